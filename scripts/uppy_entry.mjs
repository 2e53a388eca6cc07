// The two Uppy modules the Library page uses, bundled into api/static/vendor/uppy by
// scripts/vendor_assets.sh: the upload queue (core) and one multipart request per file.
export { default as Uppy } from "@uppy/core";
export { default as XHRUpload } from "@uppy/xhr-upload";
