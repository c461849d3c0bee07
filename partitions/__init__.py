"""Partition processors, by role: the pure core (``core``), state on disk (``state``), the leader's
actions (``leader``) and attempts against services (``invoker``); ``metrics`` is shared by them."""
