"""Dependencies shared by the controllers."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import NamedDependency

from api.services import Services


def provide_services(state: State) -> Services:
    services: Services = state.services
    return services


# Handlers declare ``services: ServicesDep``: injected by name from the app's dependencies.
ServicesDep = NamedDependency[Services]
