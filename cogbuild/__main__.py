"""`python -m cogbuild dockerfile | requirements | schema`: what `cog build` makes of this project.

python -m cogbuild dockerfile            the Dockerfile cog build generates (COG_CA_CERT honoured)
python -m cogbuild requirements          the requirements file it stages for the image
python -m cogbuild schema [--out PATH]   write the OpenAPI schema (default .cog/openapi_schema.json)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cogbuild.config import ConfigError, read_config
from cogbuild.dockerfile import read_ca_cert, render, requirements_txt
from cogbuild.schema import write_schema


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cogbuild", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["dockerfile", "requirements", "schema"])
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="the folder with cog.yaml")
    parser.add_argument("--out", type=Path, help="schema: where to write it")
    parser.add_argument(
        "--externally-managed", action="store_true", help="dockerfile: as for a base whose Python is uv's"
    )
    args = parser.parse_args(argv)
    project = args.project.resolve()
    try:
        config = read_config(project)
        if args.what == "schema":
            print(write_schema(config.predict, project, args.out))
        elif args.what == "requirements":
            print(requirements_txt(config))
        else:
            ca = os.environ.get("COG_CA_CERT", "").strip()
            rendered = render(
                config,
                ca_cert=read_ca_cert(ca) if ca else None,
                externally_managed_python=True if args.externally_managed else None,
            )
            print(rendered.dockerfile, end="")
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
