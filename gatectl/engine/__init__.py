"""The engine: observe -> decide -> act -> persist -> record.

- ``observe``: reading what gates need from Prometheus, batched across gates;
- ``evaluate``: one decision per gate (``gatectl evaluate``);
- ``replay``: stepping a gate through history as the controller would;
- ``reconcile``: one controller pass; ``loop``: the process (leadership,
  endpoints, signals);
- ``stores`` / ``filestate`` / ``kubestore``: where gates and their status live;
- ``actuators``: moving traffic.

Layer: above ``gatectl.adapters``; only the command line and the demo sit above it.
"""
