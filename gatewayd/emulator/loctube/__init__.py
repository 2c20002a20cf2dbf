"""An emulated loctube open API (a JetLinks-based tracker platform).

Written from the vendor's document (shared/specs/002_*.txt) and, where the document is silent or
differs, from what the real JetLinks open-API filter and hsweb's OAuth2 endpoint do; where the two
disagree both are accepted. The modules, one job each:

* :mod:`.signature`: the signature filter and the signing of answers;
* :mod:`.tokens`: the token store and ``/api/v1/token`` (and ``/api/v1/token/{type}``);
* :mod:`.oauth2`: ``/loctube/oauth2/token`` as hsweb answers it;
* :mod:`.devices`: the trackers' details, latest properties and the device query;
* :mod:`.bodies`: error bodies as the real server writes them;
* :mod:`.emulator`: the routes, authentication, and which answers are signed.

This package shares no code with ``gatewayd.clouds``: a wrong client must fail here.
"""

from __future__ import annotations

from gatewayd.emulator.loctube.emulator import ENDPOINTS, LoctubeEmulator

__all__ = ["ENDPOINTS", "LoctubeEmulator"]
