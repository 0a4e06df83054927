"""The pure core: what a decision is and how it is reached, with no I/O.

Nothing here reads a file, a socket, a clock or an environment variable; every
function takes what it needs (the policy, the observations, ``now``) and
returns a value, so it is tested with plain tables.

- ``observations``: observations, checks, decisions, phases (the vocabulary);
- ``catalog``: the built-in metric queries and query templating;
- ``labels``: PromQL label-value escaping (queries, exposition, backfills);
- ``stats``: anytime-valid confidence sequences;
- ``decide``: ``decide(policy, observations, state, now) -> Decision``;
- ``status``: the persisted status and how decisions change it;
- ``render``: decisions as dicts, JSON, YAML and tables;
- ``timeparse``: RFC 3339 and relative times;
- ``crd``: the ReleaseGate CRD, generated from the policy model.

Layer: above ``gatectl.policy`` (a decision is a function of a policy), below
everything that does I/O. ``pyproject.toml``'s import contracts enforce it.
"""
