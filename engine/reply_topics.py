"""Which topics a Reply may be written to: the operator's allowlist of client reply topics.

A Kafka-native command names the topic its result goes to. Unchecked, that is a way to make the
engine write into its own topics (a Reply on the compacted deployments topic stops every process that
reads it). So a Reply goes only to the engine's own replies topic (for its ingresses) or to a topic
matching one of the operator's glob patterns (``REPRISE_REPLY_TOPICS``, comma-separated; by default
``<namespace>.replies.*``), and never to a topic of the engine, whatever the patterns say. The commands
router checks it before a command reaches the log, and the leader again before it writes a Reply.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from reprise.engine.config import Config

# The outbox names the engine's own topics by these aliases (partitions/leader/shipper.py resolves them).
ALIASES = frozenset({"log", "replies"})
KAFKA_TOPICS = frozenset({"__consumer_offsets", "__transaction_state", "__share_group_state", "__cluster_metadata"})
_CACHE_LIMIT = 4096


def default_patterns(namespace: str) -> list[str]:
    return [f"{namespace}.replies.*"]


class ReplyTopics:
    def __init__(self, cfg: Config) -> None:
        self.patterns = [p.strip() for p in cfg.reply_topics.split(",") if p.strip()] or default_patterns(
            cfg.namespace)
        self._engine_topics = frozenset({
            cfg.log_topic, cfg.changelog_topic, cfg.replies_topic, cfg.deployments_topic, cfg.subscriptions_topic,
            cfg.dead_letter_topic, cfg.commands_topic, *ALIASES, *KAFKA_TOPICS})
        self._verdicts: dict[str, str | None] = {}  # topic -> refusal (None: allowed); O(1) after the first

    def refusal(self, topic: str) -> str | None:
        """Why ``topic`` may not receive a client's Reply, or None if it may."""
        verdict = self._verdicts.get(topic, "")
        if verdict != "":
            return verdict
        if not topic:
            verdict = "reply_to names no topic"
        elif topic in self._engine_topics:
            verdict = f"reply topic {topic!r} is one of the engine's or Kafka's own topics"
        elif not any(fnmatchcase(topic, p) for p in self.patterns):
            verdict = f"reply topic {topic!r} is not allowed: expected a topic matching {', '.join(self.patterns)}"
        else:
            verdict = None
        if len(self._verdicts) < _CACHE_LIMIT:
            self._verdicts[topic] = verdict
        return verdict

    def allows(self, topic: str) -> bool:
        return self.refusal(topic) is None
