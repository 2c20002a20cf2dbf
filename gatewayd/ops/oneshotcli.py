"""The one-shot API commands of the CLI (``gatewayd thingplus|rcms|loctube ...``): the inventory loaded,
one call made with the daemon's clients, its answer printed as JSON; kept apart from ``cli.py`` so the
command line's entry module stays a table of commands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from gatewayd import eventloop
from gatewayd.cliargs import add_config, load_config_arg
from gatewayd.inventory.config import Inventory

AddOption = Callable[[argparse.ArgumentParser], None]


def add_oneshot_parsers(
    sub: Any, parser_class: type[argparse.ArgumentParser], add_log_level: AddOption
) -> None:
    """``thingplus``, ``rcms`` and ``loctube``: one API call each, JSON on stdout."""
    tp = sub.add_parser("thingplus", help="one-shot Thing+ calls (JSON on stdout)")
    tp_sub = tp.add_subparsers(dest="what", metavar="CALL", required=True, parser_class=parser_class)
    p = tp_sub.add_parser("sites", help="the account's sites")
    p = tp_sub.add_parser("model", help="a gateway model (default: the inventory's)")
    p.add_argument("id", metavar="ID", nargs="?")
    p = tp_sub.add_parser("gateway", help="a gateway record (reportInterval, ...)")
    p.add_argument("id", metavar="ID")
    p = tp_sub.add_parser(
        "rpc",
        help="send a JSON-RPC command to an MQTT gateway through the emulator's admin API",
        description="POST {gateway, method, params} to <thingplus endpoint>/_emulator/thingplus/rpc and print "
        "the gateway's answer (the emulator only; exit 1 on a timeout or an unknown gateway).",
    )
    p.add_argument("method", metavar="METHOD", help="timeSync, setProperty, controlActuator, swInfo, ...")
    p.add_argument(
        "params", metavar="JSON", nargs="?", help='the params object, e.g. \'{"id": "...", "cmd": "on"}\''
    )
    p.add_argument(
        "--gateway", metavar="ID", help="the gateway (default: the inventory's thingplus.gateway_id)"
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer (default 10)")
    _finish_oneshot(tp_sub, cmd_thingplus, add_log_level)

    rc = sub.add_parser("rcms", help="one-shot RCMS calls (JSON on stdout)")
    rc_sub = rc.add_subparsers(dest="what", metavar="CALL", required=True, parser_class=parser_class)
    rc_sub.add_parser("total", help="device totals of the account")
    p = rc_sub.add_parser("status", help="a router's status data over a window, all pages")
    p.add_argument("sn", metavar="SN")
    p.add_argument("--since", default="1h", help="window up to now: '30m', '1h', '1d' (default 1h)")
    p = rc_sub.add_parser("set-group", help="move a router to a group")
    p.add_argument("sn", metavar="SN")
    p.add_argument("group", metavar="NAME")
    _finish_oneshot(rc_sub, cmd_rcms, add_log_level)

    lt = sub.add_parser("loctube", help="one-shot loctube calls (JSON on stdout)")
    lt_sub = lt.add_subparsers(dest="what", metavar="CALL", required=True, parser_class=parser_class)
    p = lt_sub.add_parser("detail", help="a device's details")
    p.add_argument("id", metavar="ID")
    lt_sub.add_parser("token", help="get an access token (auth: token or oauth2) and print it")
    _finish_oneshot(lt_sub, cmd_loctube, add_log_level)


def _finish_oneshot(subparsers: Any, handler: Any, add_log_level: AddOption) -> None:
    for p in subparsers.choices.values():
        add_config(p)
        add_log_level(p)
        p.set_defaults(handler=handler)


def cmd_thingplus(args: argparse.Namespace) -> int:
    from gatewayd.ops.oneshot import rpc_params, thingplus_call, thingplus_rpc

    if args.what == "rpc":
        params = rpc_params(args.params)
        return _print_call(
            args, lambda inventory: thingplus_rpc(inventory, args.method, params, args.gateway, args.timeout)
        )
    return _print_call(
        args, lambda inventory: thingplus_call(inventory, args.what, getattr(args, "id", None))
    )


def cmd_rcms(args: argparse.Namespace) -> int:
    from gatewayd.ops.oneshot import rcms_call

    positional = [a for a in (getattr(args, "sn", None), getattr(args, "group", None)) if a is not None]
    return _print_call(
        args, lambda inventory: rcms_call(inventory, args.what, positional, getattr(args, "since", None))
    )


def cmd_loctube(args: argparse.Namespace) -> int:
    from gatewayd.ops.oneshot import loctube_call

    return _print_call(args, lambda inventory: loctube_call(inventory, args.what, getattr(args, "id", None)))


def _print_call(args: argparse.Namespace, call: Callable[[Inventory], Coroutine[Any, Any, Any]]) -> int:
    """A one-shot command: the inventory loaded, one API call, its answer as JSON on stdout."""
    print_json(eventloop.run(call(load_config_arg(args))))
    return 0


def print_json(value: Any) -> None:
    """One-shot commands print their answer as JSON on stdout."""
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")
