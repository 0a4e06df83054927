"""The controller: ``gatectl run`` and the commands people use beside it.

- ``state``: the persisted status and how decisions change it (pure);
- ``stores`` / ``kubestore`` / ``filestate``: where gates and status live;
- ``actuators``: moving traffic; ``notify``: webhooks;
- ``reconcile``: one pass (observe -> decide -> act -> persist -> record);
- ``loop``: the process (leadership, endpoints, signals); ``run``/``humans``: its CLI.
"""
