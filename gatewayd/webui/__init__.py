"""The two web pages: the emulator's console and the daemon's status page, with what they share.

Why plain files with no build step: the pages must work on an offline edge box and from the .deb, so
they are static HTML, CSS and JavaScript inside the package (``static/``), with one vendored chart
library (uPlot, MIT, ``static/vendor/uplot``, refreshed by ``scripts/vendor-uplot.sh``). Live data
reaches them as server-sent events (:mod:`gatewayd.webui.events`), never by polling.
"""
