from engine.folder import FileStat
from engine.plan import Current, plan_index

V = ["clip-vit-b-32@openai", "hsv-8x8x8@none"]


def payload(*files, vectors=V, tags=()):
    return {
        "files": [{"path": p, "size": s, "mtime_ns": m} for p, s, m in files],
        "vectors": list(vectors),
        "tags": list(tags),
    }


def current(points, scope=""):
    return Current.from_payloads(points.items(), lambda k: k.startswith(scope))


def test_unchanged_files_are_not_hashed():
    cur = current({"p1": payload(("a.jpg", 10, 1))})
    plan = plan_index(cur, {"a.jpg": FileStat(10, 1)}, V)
    assert plan.unchanged == {"a.jpg": "p1"}
    assert plan.is_empty


def test_new_and_changed_files_are_hashed_and_old_claims_marked_stale():
    cur = current({"p1": payload(("a.jpg", 10, 1))})
    desired = {"a.jpg": FileStat(10, 2), "b.jpg": FileStat(5, 1)}
    plan = plan_index(cur, desired, V)
    assert plan.to_hash == ["a.jpg", "b.jpg"]
    assert plan.stale_claims == {"a.jpg": {"p1"}}
    assert not plan.unchanged


def test_size_change_alone_counts_as_changed():
    cur = current({"p1": payload(("a.jpg", 10, 1))})
    plan = plan_index(cur, {"a.jpg": FileStat(11, 1)}, V)
    assert plan.to_hash == ["a.jpg"]


def test_deleted_files_are_removed_from_their_point():
    cur = current({"p1": payload(("a.jpg", 10, 1), ("b.jpg", 10, 1))})
    plan = plan_index(cur, {"a.jpg": FileStat(10, 1)}, V)
    assert plan.removed == {"p1": {"b.jpg"}}


def test_file_claimed_twice_after_an_interrupted_run_is_rehashed():
    cur = current({"p1": payload(("a.jpg", 10, 1)), "p2": payload(("a.jpg", 10, 1))})
    plan = plan_index(cur, {"a.jpg": FileStat(10, 1)}, V)
    assert plan.to_hash == ["a.jpg"]
    assert plan.stale_claims == {"a.jpg": {"p1", "p2"}}


def test_scope_limits_what_counts_as_removed():
    cur = current(
        {"p1": payload(("rings/a.jpg", 1, 1)), "p2": payload(("shoes/b.jpg", 1, 1))},
        scope="rings/",
    )
    plan = plan_index(cur, {}, V)
    assert plan.removed == {"p1": {"rings/a.jpg"}}


def test_points_missing_a_model_vector_are_reembedded_once():
    cur = current({"p1": payload(("a.jpg", 1, 1), ("b.jpg", 1, 1), vectors=V[:1])})
    plan = plan_index(cur, {"a.jpg": FileStat(1, 1), "b.jpg": FileStat(1, 1)}, V)
    assert list(plan.reembed) == ["p1"]
    assert plan.reembed["p1"] in {"a.jpg", "b.jpg"}


def test_vectors_from_other_weights_are_stale():
    cur = current({"p1": payload(("a.jpg", 1, 1), vectors=["clip-vit-b-32@random"])})
    plan = plan_index(cur, {"a.jpg": FileStat(1, 1)}, ["clip-vit-b-32@openai"])
    assert plan.reembed == {"p1": "a.jpg"}


def test_tags_are_added_only_where_missing():
    cur = current({"p1": payload(("a.jpg", 1, 1), tags=["gold"]), "p2": payload(("b.jpg", 1, 1))})
    plan = plan_index(cur, {"a.jpg": FileStat(1, 1), "b.jpg": FileStat(1, 1)}, V, ["gold"])
    assert plan.retag == ["p2"]
