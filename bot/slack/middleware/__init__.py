"""Cross-cutting concerns of the Slack app, one module each: who may write
(:mod:`.authorize`) and the audit trail of every interaction (:mod:`.audit`)."""
