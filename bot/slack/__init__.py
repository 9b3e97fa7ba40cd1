"""The Slack app: what people see and click.

:mod:`bot.slack.app` builds the bolt app from its listeners (``listeners/``: thin —
parse, call a service, render) and middleware (``middleware/``: who may write, the
audit of every request); ``render/`` turns incidents, reports and answers into Block
Kit, every outside string escaped; :mod:`bot.slack.outbox` delivers what the monitors
queued, exactly once, paced per channel (:mod:`bot.slack.pace`), finding its earlier
posts after a crash (:mod:`bot.slack.posts`); :mod:`bot.slack.home` publishes the Home
tab, :mod:`bot.slack.weekly_review` and :mod:`bot.slack.verdicts` the weekly decision;
:mod:`bot.slack.socket_mode` connects out when there is no public URL.
"""
