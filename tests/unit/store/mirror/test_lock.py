"""The mirror's readers-writer lock: a queued writer holds off new readers."""

from __future__ import annotations

import threading

from store.mirror.lock import RWLock


def test_rwlock_writer_is_not_starved_by_new_readers() -> None:
    lock = RWLock()
    order: list[str] = []
    reading, writer_waiting = threading.Event(), threading.Event()
    release = threading.Event()

    def first_reader() -> None:
        with lock.read():
            reading.set()
            release.wait(5)
            order.append("reader 1")

    def writer() -> None:
        writer_waiting.set()
        with lock.write():
            order.append("writer")

    def late_reader() -> None:
        with lock.read():
            order.append("reader 2")

    threads = [threading.Thread(target=first_reader)]
    threads[0].start()
    reading.wait(5)
    threads.append(threading.Thread(target=writer))
    threads[1].start()
    writer_waiting.wait(5)
    while not lock._writers_waiting:  # the writer is queued behind reader 1
        threading.Event().wait(0.001)
    threads.append(threading.Thread(target=late_reader))
    threads[2].start()
    threading.Event().wait(0.05)
    assert order == []  # reader 2 queues behind the writer, not beside reader 1
    release.set()
    for t in threads:
        t.join(5)
    assert order == ["reader 1", "writer", "reader 2"]
