"""What `cog build` makes of this project, without the Cog CLI: its Dockerfile and its OpenAPI schema.

Cog's CLI is a Go program that is in no package registry; the parts of it that decide what goes into an
image are small and are followed here line by line, so the image can be built and tested where only
Docker is available, and the schema can be written for local runs of the Cog runtime (coglet):

- `config.read_config(project)`: cog.yaml and its requirements file, as Cog reads them.
- `dockerfile.render(config, ...)`: the Dockerfile of Cog's standard generator (the cog-base-image path).
- `schema.openapi_schema(config.predict, project)`: the OpenAPI document `cog build` writes to
  `.cog/openapi_schema.json`, which coglet reads to validate every prediction's input.

`python -m cogbuild dockerfile|requirements|schema` prints or writes them.
"""

from cogbuild.config import CogConfig, read_config
from cogbuild.dockerfile import Rendered, render
from cogbuild.schema import SCHEMA_PATH, openapi_schema, write_schema

__all__ = ["SCHEMA_PATH", "CogConfig", "Rendered", "openapi_schema", "read_config", "render", "write_schema"]
