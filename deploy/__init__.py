"""The composition root: which parts a process runs and how they are wired (the CLI, ``reprise dev``,
``processor``, ``ingress``, the partitions commands), the compiled apply path's loader, local Kafka,
and the files that deploy Reprise (image, compose, Kubernetes)."""
