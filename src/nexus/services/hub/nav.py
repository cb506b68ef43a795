"""The Hub's navigation: sections and pages, each shown only to those who may use it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nexus.services.hub.web import Ctx


@dataclass(frozen=True)
class Page:
    title: str
    url: str
    permissions: tuple[str, ...] = ()
    service: str | None = None
    icon: str = "dot"
    blurb: str = ""


@dataclass(frozen=True)
class Section:
    title: str
    pages: tuple[Page, ...]


SECTIONS = (
    Section("", (Page("Home", "/", icon="home"),)),
    Section(
        "Messaging",
        (
            Page(
                "Compose",
                "/messages/new",
                ("vas:message:send",),
                "vas",
                "send",
                "Send an SMS, WhatsApp, Telegram, Messenger or e-mail message.",
            ),
            Page(
                "Message log",
                "/messages",
                ("vas:message:read",),
                "vas",
                "list",
                "Every message with its live status and routing history.",
            ),
            Page(
                "Providers",
                "/providers",
                ("vas:provider:read",),
                "vas",
                "plug",
                "Provider accounts, their health, circuit state and success rate.",
            ),
            Page(
                "Analytics",
                "/analytics",
                ("vas:message:read",),  # the sample; vas:analytics:read for the whole range
                "vas",
                "chart",
                "Volume over time, delivery rate by provider, cost.",
            ),
        ),
    ),
    Section(
        "Engagement",
        (
            Page(
                "Contacts",
                "/contacts",
                ("vas:contact:read",),
                "vas",
                "users",
                "People you message, CSV import, opt-outs.",
            ),
            Page(
                "Templates",
                "/templates",
                ("vas:template:read",),
                "vas",
                "audit",
                "Reusable messages with variables and a preview.",
            ),
            Page(
                "Campaigns",
                "/campaigns",
                ("vas:campaign:read",),
                "vas",
                "send",
                "Send to many, throttled, with A/B tests and live progress.",
            ),
        ),
    ),
    Section(
        "CRM",
        (
            Page(
                "Pipeline",
                "/crm/board",
                ("crm:deal:read",),
                "crm",
                "chart",
                "Deals by stage: drag a card to move the deal.",
            ),
            Page(
                "Deals",
                "/crm/deals",
                ("crm:deal:read",),
                "crm",
                "list",
                "Every deal with its stage, value and owner.",
            ),
            Page(
                "People",
                "/crm/contacts",
                ("crm:contact:read",),
                "crm",
                "user",
                "Contacts with their timeline, deals and lead score.",
            ),
            Page(
                "Companies",
                "/crm/companies",
                ("crm:company:read",),
                "crm",
                "group",
                "Accounts, their people and deals.",
            ),
            Page(
                "Forecast",
                "/crm/forecast",
                ("crm:deal:read",),
                "crm",
                "chart",
                "Weighted pipeline by period and owner, win rate, cycle time.",
            ),
        ),
    ),
    Section(
        "Administration",
        (
            Page(
                "Users",
                "/admin/users",
                ("idaas:user:read",),
                "idaas",
                "users",
                "Invite people, suspend accounts, grant roles.",
            ),
            Page(
                "Groups",
                "/admin/groups",
                ("idaas:group:read",),
                "idaas",
                "group",
                "Teams of users that share roles.",
            ),
            Page(
                "Roles",
                "/admin/roles",
                ("idaas:role:read",),
                "idaas",
                "shield",
                "Sets of permissions, built in and your own.",
            ),
            Page(
                "API keys",
                "/admin/api-keys",
                ("idaas:apikey:manage",),
                "idaas",
                "key",
                "Keys for scripts and servers, shown once.",
            ),
            Page(
                "OAuth clients",
                "/admin/oauth-clients",
                ("idaas:client:manage",),
                "idaas",
                "app",
                "Apps that sign people in with Nexus.",
            ),
            Page(
                "Audit log",
                "/admin/audit",
                ("idaas:audit:review",),
                "idaas",
                "audit",
                "Who did what, and when.",
            ),
            Page(
                "Org settings",
                "/admin/org",
                ("idaas:org:read",),
                "idaas",
                "gear",
                "Your organisation's name and defaults.",
            ),
        ),
    ),
)


@dataclass(frozen=True)
class NavItem:
    page: Page
    current: bool


def visible(ctx: Ctx, page: Page) -> bool:
    return (page.service is None or ctx.running(page.service)) and ctx.can(*page.permissions)


def nav_for(ctx: Ctx, path: str) -> list[tuple[str, list[NavItem]]]:
    out = []
    for section in SECTIONS:
        items = []
        for page in section.pages:
            if visible(ctx, page):
                current = path == page.url or (
                    page.url != "/" and path.startswith(page.url + "/") and page.url != "/messages"
                )
                if page.url == "/messages":
                    current = path == "/messages" or (
                        path.startswith("/messages/") and path != "/messages/new"
                    )
                items.append(NavItem(page, current))
        if items:
            out.append((section.title, items))
    return out


def launcher(ctx: Ctx) -> list[Page]:
    return [p for s in SECTIONS for p in s.pages if p.url != "/" and visible(ctx, p)]
