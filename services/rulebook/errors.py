"""The rule book's one error: the knowledge lacks what a committee needs to read."""

from services.plan_builder.errors import KnowledgeError


class RuleBookError(KnowledgeError):
    """An intervention lacks a required attribute; the message names the artifact and the field."""
