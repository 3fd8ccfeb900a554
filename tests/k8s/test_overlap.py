"""Selectors that only partly overlap, on the real API server: two DataPolicies of one namespace
whose `matchLabels` require no label key with two different values (`{app: shop}` and
`{tier: web}`, `{app: shop}` and `{app: shop, tier: web}`, or an empty selector beside any) may
select one pod, which then gets both filters in an order Istio decides. The test server has no
Pods, and neither does the controller read them: it decides on the selectors alone. Both stay
programmed; each gets `Overlapping=True` (reason SelectorOverlap) naming the other policy and the
labels such a pod carries, and a Warning event; the condition goes (with a Normal event) when the
overlap does - the other policy deleted or its selector changed. Equal selectors stay a Conflict
(test_controller.py): only the winner of a workload set counts. Disjoint selectors
(`app: a` / `app: b`) are not flagged. Each overlap that starts or ends costs one reconcile of
each side, not one of every policy of the namespace.

The fixtures and helpers are test_controller.py's (imported); this module runs its own
controller with events on."""

import time

import pytest

from test_controller import (  # noqa: F401 (fixtures)
    Controller, apply, conditions, controller_bin, crd, get, load, reconciled, release_finalizers, settled,
    wait_for)

NS = "overlap"


@pytest.fixture(scope="module")
def controller(cluster, crd, controller_bin):  # noqa: F811
    c = Controller(controller_bin, cluster, log_name="controller-overlap.log")
    try:
        yield c.start(events=True)
    finally:
        c.stop()
        release_finalizers(cluster)


def policy(name, ns, labels):
    doc = load("orders.yaml")
    doc["metadata"].update(name=name, namespace=ns)
    if labels:
        doc["spec"]["selector"] = {"matchLabels": labels}
    else:
        doc["spec"].pop("selector", None)
    return doc


def current(cluster, name, ns):
    """The DataPolicy once its status is for its current generation (any number of conditions)."""
    dp = get(cluster, "datapolicy", name, ns)
    if dp is None:
        return None
    gen = dp["metadata"]["generation"]
    conds = conditions(dp)
    if (dp.get("status") or {}).get("observedGeneration") != gen or "Programmed" not in conds or \
            any(c.get("observedGeneration") != gen for c in conds.values()):
        return None
    return dp


def overlap_message(partners):
    """What the controller says of a policy that may share pods with `partners` ([(id, labels)])."""
    listed = ", ".join("%s (a pod labelled %s)" % p for p in sorted(partners))
    return ("spec.selector: a pod may get the filters of this policy and of %s, in an order Istio decides; "
            "%s stay programmed (selectors that only partly overlap; give each workload one policy)"
            % (listed, "both" if len(partners) == 1 else "all"))


def flagged(cluster, ns, want):
    """`want`: name -> [(partner id, labels)] ([] = no Overlapping condition). True once every
    policy says exactly that and is programmed."""
    def check():
        for name, partners in want.items():
            dp = current(cluster, name, ns)
            if dp is None:
                return None
            conds = conditions(dp)
            if conds["Programmed"]["status"] != "True" or conds["Accepted"]["status"] != "True":
                return None
            c = conds.get("Overlapping")
            if not partners:
                if c is not None or len(conds) != 3:
                    return None
            elif c is None or (c["status"], c["reason"], c["message"]) != \
                    ("True", "SelectorOverlap", overlap_message(partners)):
                return None
        return True
    return check


def events(cluster, ns, name, reason):
    items = cluster.kubectl_json(["get", "events.events.k8s.io", "-n", ns])["items"]
    return [e for e in items if e.get("regarding", {}).get("name") == name and e.get("reason") == reason]


def delete(cluster, controller, ns, *names):
    for name in names:
        cluster.kubectl(["delete", "datapolicy", name, "-n", ns, "--wait=false"], check=True)
    for name in names:
        wait_for(name + " gone", lambda: get(cluster, "datapolicy", name, ns) is None, controller)


# ---------------------------------------------------------------- tests, in order
def test_partial_overlap_flagged_on_both(cluster, controller):
    """`{app: shop}` and `{tier: web}`: a pod with both labels gets both filters. Both stay
    programmed, each names the other and the labels, each gets a Warning event."""
    apply(cluster, policy("shop", NS, {"app": "shop"}))
    apply(cluster, policy("web", NS, {"tier": "web"}))
    labels = "app=shop, tier=web"
    wait_for("both flagged", flagged(cluster, NS, {"shop": [(NS + "/web", labels)], "web": [(NS + "/shop", labels)]}),
             controller)
    for name in ("shop", "web"):
        assert get(cluster, "envoyfilter", "meshdlp-" + name, NS) is not None, name
        # What docs/ISTIO.md tells the owner to run.
        cluster.kubectl(["wait", "--for=condition=Overlapping", "dp/" + name, "-n", NS, "--timeout=10s"], check=True)
        warning = wait_for(name + " warned", lambda: events(cluster, NS, name, "SelectorOverlap"), controller)[0]
        assert warning["type"] == "Warning", warning
        other = "web" if name == "shop" else "shop"
        assert warning["note"] == overlap_message([(NS + "/" + other, labels)]), warning
    # Nothing more to do: no reconcile keeps waking another.
    before = settled(controller)
    time.sleep(3)
    assert controller.metric("meshdlp_controller_reconciles") == before


def test_subset_and_empty_selectors_overlap(cluster, controller):
    """`{app: shop}` vs `{app: shop, tier: web}` (a subset) and an empty selector (the whole
    namespace) beside both: every pair is flagged, each policy naming the two others."""
    ns = "overlap-sub"
    apply(cluster, policy("shop", ns, {"app": "shop"}))
    apply(cluster, policy("shop-web", ns, {"app": "shop", "tier": "web"}))
    apply(cluster, policy("all", ns, None))
    sub = "app=shop, tier=web"
    wait_for("all three flagged", flagged(cluster, ns, {
        "shop": [(ns + "/shop-web", sub), (ns + "/all", "app=shop")],
        "shop-web": [(ns + "/shop", sub), (ns + "/all", sub)],
        "all": [(ns + "/shop", "app=shop"), (ns + "/shop-web", sub)],
    }), controller)


def test_disjoint_selectors_not_flagged(cluster, controller):
    """`app: a` / `app: b` / `{app: c, tier: web}`: no pod can carry two of them."""
    ns = "overlap-disjoint"
    for name, labels in (("a", {"app": "a"}), ("b", {"app": "b"}), ("c", {"app": "c", "tier": "web"})):
        apply(cluster, policy(name, ns, labels))
    for name in ("a", "b", "c"):
        dp = wait_for(name + " reconciled", reconciled(cluster, name, ns), controller)
        assert "Overlapping" not in conditions(dp) and conditions(dp)["Programmed"]["status"] == "True"
    settled(controller)
    for name in ("a", "b", "c"):
        assert "Overlapping" not in conditions(get(cluster, "datapolicy", name, ns))
        assert not events(cluster, ns, name, "SelectorOverlap")
    delete(cluster, controller, ns, "a", "b", "c")


def test_overlap_follows_a_selector_change_and_clears(cluster, controller):
    """`web` moves to `{tier: api}`: still overlapping, the labels change on both sides; then to
    `{app: other, tier: api}`: disjoint from `{app: shop}`, the condition goes from both, with a
    Normal event."""
    apply(cluster, policy("web", NS, {"tier": "api"}))
    api = "app=shop, tier=api"
    wait_for("the new labels on both", flagged(cluster, NS, {"shop": [(NS + "/web", api)], "web": [(NS + "/shop", api)]}),
             controller)
    apply(cluster, policy("web", NS, {"app": "other", "tier": "api"}))
    wait_for("cleared on both", flagged(cluster, NS, {"shop": [], "web": []}), controller)
    for name in ("shop", "web"):
        resolved = wait_for(name + " told", lambda: events(cluster, NS, name, "SelectorOverlapResolved"), controller)
        assert resolved[0]["type"] == "Normal", resolved
    delete(cluster, controller, NS, "shop", "web")


def test_overlap_clears_on_delete(cluster, controller):
    """Deleting `shop-web` leaves `shop` and `all` overlapping each other only; deleting `all`
    clears `shop`."""
    ns = "overlap-sub"
    delete(cluster, controller, ns, "shop-web")
    wait_for("shop-web's overlaps gone", flagged(cluster, ns, {
        "shop": [(ns + "/all", "app=shop")], "all": [(ns + "/shop", "app=shop")]}), controller)
    delete(cluster, controller, ns, "all")
    wait_for("shop cleared", flagged(cluster, ns, {"shop": []}), controller)
    delete(cluster, controller, ns, "shop")


def test_only_the_winner_of_a_workload_set_counts(cluster, controller):
    """`x1` and `x2` with `{app: shop}` (x2 younger: a Conflict, nothing programmed) beside `y`
    `{tier: web}`: y names x1 only, x2 has no Overlapping. When x1 goes, x2 takes over and y
    names x2."""
    ns = "overlap-conflict"
    apply(cluster, policy("x1", ns, {"app": "shop"}))
    wait_for("x1 programmed", reconciled(cluster, "x1", ns), controller)
    apply(cluster, policy("x2", ns, {"app": "shop"}))
    apply(cluster, policy("y", ns, {"tier": "web"}))
    labels = "app=shop, tier=web"
    wait_for("x1 and y flagged", flagged(cluster, ns, {"x1": [(ns + "/y", labels)], "y": [(ns + "/x1", labels)]}),
             controller)
    x2 = wait_for("x2 reconciled", reconciled(cluster, "x2", ns), controller)
    assert conditions(x2)["Accepted"]["reason"] == "Conflict" and "Overlapping" not in conditions(x2)
    delete(cluster, controller, ns, "x1")
    wait_for("x2 took over", flagged(cluster, ns, {"x2": [(ns + "/y", labels)], "y": [(ns + "/x2", labels)]}),
             controller)
    delete(cluster, controller, ns, "x2", "y")


SPOKES = 6


def test_overlap_reconciles_stay_linear(cluster, controller):
    """A hub `{app: hub}` and N spokes `{app: hub, tier: tI}` (disjoint from each other): each
    spoke overlaps the hub only. Created at once, then the hub deleted: the reconcile counter
    grows with N (a change of an overlap wakes its two sides, not the namespace)."""
    ns = "overlap-hub"
    docs = [policy("hub", ns, {"app": "hub"})] + \
        [policy("spoke-%d" % i, ns, {"app": "hub", "tier": "t%d" % i}) for i in range(SPOKES)]
    before = settled(controller)
    cluster.apply(docs)
    want = {"hub": [(ns + "/spoke-%d" % i, "app=hub, tier=t%d" % i) for i in range(SPOKES)]}
    want.update({"spoke-%d" % i: [(ns + "/hub", "app=hub, tier=t%d" % i)] for i in range(SPOKES)})
    wait_for("hub and spokes flagged", flagged(cluster, ns, want), controller)
    created = settled(controller) - before
    delete(cluster, controller, ns, "hub")
    wait_for("spokes cleared", flagged(cluster, ns, {"spoke-%d" % i: [] for i in range(SPOKES)}), controller)
    gone = settled(controller) - before - created
    print("hub + %d spokes: %d reconciles to create, %d for the hub's deletion" % (SPOKES, created, gone))
    # Created: each policy three times (finalizer, apply, its status echo); the hub once more per
    # spoke it learns of late (woken, and its status echo) -> about 5N. Deleted: the hub's
    # cleanup, each spoke woken once and its status echo -> about 2N.
    assert created <= 6 * (SPOKES + 1), created
    assert gone <= 3 * (SPOKES + 1), gone
    delete(cluster, controller, ns, *["spoke-%d" % i for i in range(SPOKES)])
