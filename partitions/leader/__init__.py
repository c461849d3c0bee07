"""What a partition's leader does: the processor (consume, apply, commit, act), its claims on the
partitions, the outbox shipper, durable timers and the attempt watchdog."""
