"""Block Kit for the Slack face, built with slack_sdk's model classes (they validate):
the SKU report (:mod:`.report`), lists (:mod:`.lists`), the root-cause modal
(:mod:`.modals`)."""
