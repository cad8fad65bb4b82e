"""The relationship managers' dashboard: `python -m panel_app.app` (or `panel serve panel_app/app.py`)."""

from __future__ import annotations

import argparse

import panel as pn

from panel_app.data_store import SnapshotStore
from panel_app.views import dashboard

pn.extension("tabulator")


def create_app() -> pn.template.BootstrapTemplate:
    template = pn.template.BootstrapTemplate(title="Credit decisions")
    template.main.append(dashboard(SnapshotStore()))
    return template


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=5006)
    parser.add_argument("--address", default="127.0.0.1")
    args = parser.parse_args()
    # Resources (BokehJS, Tabulator) come from this server: the page needs no internet.
    pn.serve({"app": create_app}, port=args.port, address=args.address, show=False, title="Credit decisions")


if pn.state.served:
    create_app().servable()

if __name__ == "__main__":
    main()
