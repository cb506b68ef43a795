"""placeholder"""

from fastapi import APIRouter

from nexus.services.hub.web import HubRoute

router = APIRouter(route_class=HubRoute, include_in_schema=False)
