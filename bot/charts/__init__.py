"""The charts posted in alert threads, reports and the Home tab, as PNG bytes.

:mod:`bot.charts.worker` renders off the event loop (a worker process, else a thread);
:mod:`bot.charts.style` is how every chart looks at a Slack thread's width;
:mod:`bot.charts.sku` is a SKU's level per system (the alert's chart) and the upload
into a thread; the others chart health, the weekly and daily reports, the signal chain
and the KPIs.
"""
