"""The tenant the sandbox serves: the tenant file format of spec/config.md and the demo tenant."""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_NS = uuid.UUID("4f7d1c2e-9a57-4f43-9d0e-2c1f5b9a7e11")


def demo_id(name: str) -> str:
    """A stable GUID for a name of the demo tenant."""
    return str(uuid.uuid5(_NS, name))


@dataclass
class App:
    """An app registration: credentials and the permissions it was granted."""

    client_id: str
    client_secret: str
    application_permissions: list[str] = field(default_factory=list)
    delegated_permissions: list[str] = field(default_factory=list)
    entitlement_roles: list[str] = field(default_factory=list)
    display_name: str = "Elevate"
    certificates: list[str] = field(default_factory=list)  # registered public certificates, PEM


@dataclass
class User:
    """A directory user."""

    id: str
    user_principal_name: str
    display_name: str
    mail: str | None = None
    manager_id: str | None = None
    user_type: str = "Member"
    entitlement_roles: list[str] = field(default_factory=list)
    given_name: str | None = None
    surname: str | None = None
    job_title: str | None = None


@dataclass
class Group:
    """A security group; ``members`` holds user ids."""

    id: str
    display_name: str
    security_identifier: str
    members: list[str] = field(default_factory=list)
    description: str | None = None


@dataclass
class Catalog:
    """An entitlement-management catalog."""

    id: str
    display_name: str
    description: str = ""


@dataclass
class AccessPackage:
    """An access package granting Member of ``group_id``."""

    id: str
    catalog_id: str
    display_name: str
    group_id: str
    description: str = ""


@dataclass
class SlackUser:
    """A Slack member mapped to a directory user."""

    id: str
    upn: str
    email: str
    name: str = ""


@dataclass
class Channel:
    """A Slack or Teams channel."""

    id: str
    name: str


@dataclass
class TeamsUser:
    """A Teams user (``29:…``) mapped to a directory user."""

    id: str
    upn: str


@dataclass
class Tenant:
    """Everything the sandbox knows about at start."""

    id: str
    domain: str
    apps: list[App]
    users: list[User]
    groups: list[Group]
    catalogs: list[Catalog]
    access_packages: list[AccessPackage]
    assignment_policies: list[dict[str, Any]]
    slack_team_id: str = "T0SANDBOX"
    slack_users: list[SlackUser] = field(default_factory=list)
    slack_channels: list[Channel] = field(default_factory=list)
    teams_users: list[TeamsUser] = field(default_factory=list)
    teams_channels: list[Channel] = field(default_factory=list)

    def user(self, key: str) -> User | None:
        """A user by object id or user principal name (case-insensitive).

        O(1): an index of ``users`` is rebuilt when the list was replaced or changed length
        (a benchmark renders tens of thousands of assignment targets per sweep).
        """
        index = self._user_index()
        found = index.get(key) or index.get(key.lower())
        if found is not None and (
            found.id == key or found.user_principal_name.lower() == key.lower()
        ):
            return found
        low = key.lower()
        for u in self.users:  # a user edited in place since the index was built
            if u.id == key or u.user_principal_name.lower() == low:
                return u
        return None

    def _user_index(self) -> dict[str, User]:
        cached = self.__dict__.get("_users_index")
        if cached is None or cached[0] is not self.users or cached[1] != len(self.users):
            index: dict[str, User] = {}
            for u in reversed(self.users):  # the first match wins, as in a scan
                index[u.user_principal_name.lower()] = u
                index[u.id] = u
            cached = (self.users, len(self.users), index)
            self.__dict__["_users_index"] = cached
        return cached[2]

    def group(self, group_id: str) -> Group | None:
        """A group by object id."""
        return next((g for g in self.groups if g.id == group_id), None)

    def app(self, client_id: str) -> App | None:
        """An app registration by client id."""
        return next((a for a in self.apps if a.client_id == client_id), None)


def load_tenant(path: Path) -> Tenant:
    """Read a tenant file (JSON, the format in spec/config.md)."""
    return tenant_from_dict(json.loads(path.read_text(encoding="utf-8")))


def tenant_from_dict(data: dict[str, Any]) -> Tenant:
    """Build a ``Tenant`` from the tenant-file JSON."""
    t = data["tenant"]
    slack = data.get("slack") or {}
    teams = data.get("teams") or {}
    return Tenant(
        id=t["id"],
        domain=t.get("domain", "contoso.test"),
        apps=[
            App(
                client_id=a["clientId"],
                client_secret=a["clientSecret"],
                application_permissions=list(a.get("applicationPermissions", [])),
                delegated_permissions=list(a.get("delegatedPermissions", [])),
                entitlement_roles=list(a.get("entitlementRoles", [])),
                display_name=a.get("displayName", "Elevate"),
                certificates=list(a.get("certificates", [])),
            )
            for a in data.get("apps", [])
        ],
        users=[
            User(
                id=u["id"],
                user_principal_name=u["userPrincipalName"],
                display_name=u.get("displayName", u["userPrincipalName"]),
                mail=u.get("mail"),
                manager_id=u.get("managerId"),
                user_type=u.get("userType", "Member"),
                entitlement_roles=list(u.get("entitlementRoles", [])),
                given_name=u.get("givenName"),
                surname=u.get("surname"),
                job_title=u.get("jobTitle"),
            )
            for u in data.get("users", [])
        ],
        groups=[
            Group(
                id=g["id"],
                display_name=g["displayName"],
                security_identifier=g.get("securityIdentifier") or _sid_for(g["id"]),
                members=list(g.get("members", [])),
                description=g.get("description"),
            )
            for g in data.get("groups", [])
        ],
        catalogs=[
            Catalog(id=c["id"], display_name=c["displayName"], description=c.get("description", ""))
            for c in data.get("catalogs", [])
        ],
        access_packages=[
            AccessPackage(
                id=p["id"],
                catalog_id=p["catalogId"],
                display_name=p["displayName"],
                group_id=p["groupId"],
                description=p.get("description", ""),
            )
            for p in data.get("accessPackages", [])
        ],
        assignment_policies=[dict(p) for p in data.get("assignmentPolicies", [])],
        slack_team_id=slack.get("teamId", "T0SANDBOX"),
        slack_users=[
            SlackUser(
                id=u["id"], upn=u["upn"], email=u.get("email", u["upn"]), name=u.get("name", "")
            )
            for u in slack.get("users", [])
        ],
        slack_channels=[Channel(id=c["id"], name=c["name"]) for c in slack.get("channels", [])],
        teams_users=[TeamsUser(id=u["id"], upn=u["upn"]) for u in teams.get("users", [])],
        teams_channels=[Channel(id=c["id"], name=c["name"]) for c in teams.get("channels", [])],
    )


def _sid_for(object_id: str) -> str:
    """The ``S-1-12-1-…`` SID Entra derives from an object id (four little-endian uint32s)."""
    raw = uuid.UUID(object_id).bytes_le
    parts = [int.from_bytes(raw[i : i + 4], "little") for i in range(0, 16, 4)]
    return "S-1-12-1-" + "-".join(str(p) for p in parts)


def demo_tenant() -> Tenant:
    """The built-in tenant: a requester, two approvers, a manager, an admin, one JIT package."""
    domain = "contoso.test"
    ids = {
        n: demo_id(n)
        for n in (
            "tenant",
            "app",
            "alice",
            "bob",
            "carol",
            "dave",
            "erin",
            "gary",
            "jit-group",
            "approvers",
            "catalog",
            "package",
            "policy",
            "other-group",
            "other-package",
            "other-policy",
        )
    }

    def user(name: str, display: str, manager: str | None = None, **kw: Any) -> User:
        upn = f"{name}@{domain}"
        return User(
            id=ids[name],
            user_principal_name=upn,
            display_name=display,
            mail=upn,
            manager_id=ids[manager] if manager else None,
            **kw,
        )

    users = [
        user("alice", "Alice Requester", manager="dave", job_title="Engineer"),
        user("bob", "Bob Approver", manager="dave", job_title="IT support"),
        user("carol", "Carol Approver", manager="dave", job_title="IT support"),
        user("dave", "Dave Manager", job_title="Engineering manager"),
        user(
            "erin",
            "Erin Admin",
            job_title="IT administrator",
            entitlement_roles=["AccessPackageAssignmentManager"],
        ),
        user("gary", "Gary Guest", user_type="Guest"),
    ]
    policy: dict[str, Any] = {
        "id": ids["policy"],
        "displayName": "Local admin: self-service with approval",
        "description": "Members may request local admin for up to 8 hours with IT approval.",
        "allowedTargetScope": "allMemberUsers",
        "specificAllowedTargets": [],
        "expiration": {"type": "afterDuration", "duration": "PT8H", "endDateTime": None},
        "requestorSettings": {
            "enableTargetsToSelfAddAccess": True,
            "enableTargetsToSelfUpdateAccess": True,
            "enableTargetsToSelfRemoveAccess": True,
            "allowCustomAssignmentSchedule": True,
            "enableOnBehalfRequestorsToAddAccess": False,
            "enableOnBehalfRequestorsToUpdateAccess": False,
            "enableOnBehalfRequestorsToRemoveAccess": False,
            "onBehalfRequestors": [],
        },
        "requestApprovalSettings": {
            "isApprovalRequiredForAdd": True,
            "isApprovalRequiredForUpdate": False,
            "isRequestorJustificationRequired": True,
            "stages": [
                {
                    "durationBeforeAutomaticDenial": "P1D",
                    "isApproverJustificationRequired": False,
                    "isEscalationEnabled": False,
                    "durationBeforeEscalation": "PT0S",
                    "primaryApprovers": [
                        {
                            "@odata.type": "#microsoft.graph.groupMembers",
                            "groupId": ids["approvers"],
                            "description": "Local admin approvers",
                        }
                    ],
                    "fallbackPrimaryApprovers": [
                        {"@odata.type": "#microsoft.graph.singleUser", "userId": ids["erin"]}
                    ],
                    "escalationApprovers": [],
                    "fallbackEscalationApprovers": [],
                }
            ],
        },
        "automaticRequestSettings": None,
        "questions": [],
        "notificationSettings": {"isAssignmentNotificationDisabled": False},
        "reviewSettings": None,
        "accessPackage": {"id": ids["package"]},
    }
    other_policy = {
        **policy,
        "id": ids["other-policy"],
        "displayName": "Sales tools: no approval",
        "description": "Unrelated package; Elevate must ignore it.",
        "expiration": {"type": "afterDuration", "duration": "P30D", "endDateTime": None},
        "requestApprovalSettings": {
            "isApprovalRequiredForAdd": False,
            "isApprovalRequiredForUpdate": False,
            "isRequestorJustificationRequired": False,
            "stages": [],
        },
        "accessPackage": {"id": ids["other-package"]},
    }
    return Tenant(
        id=ids["tenant"],
        domain=domain,
        apps=[
            App(
                client_id=ids["app"],
                client_secret="sandbox-secret-" + secrets.token_urlsafe(12),
                application_permissions=[
                    "EntitlementManagement.ReadWrite.All",
                    "User.Read.All",
                    "GroupMember.Read.All",
                ],
                delegated_permissions=[
                    "EntitlementMgmt-SubjectAccess.ReadWrite",
                    "EntitlementManagement.ReadWrite.All",
                    "User.Read",
                    "offline_access",
                    "openid",
                    "profile",
                ],
                entitlement_roles=["AccessPackageAssignmentManager"],
            )
        ],
        users=users,
        groups=[
            Group(
                id=ids["jit-group"],
                display_name="Local Admins (JIT)",
                security_identifier=_sid_for(ids["jit-group"]),
                description="Members are local administrators on Intune-managed PCs.",
            ),
            Group(
                id=ids["approvers"],
                display_name="Local admin approvers",
                security_identifier=_sid_for(ids["approvers"]),
                members=[ids["bob"], ids["carol"]],
            ),
            Group(
                id=ids["other-group"],
                display_name="Sales tools",
                security_identifier=_sid_for(ids["other-group"]),
            ),
        ],
        catalogs=[Catalog(id=ids["catalog"], display_name="General")],
        access_packages=[
            AccessPackage(
                id=ids["package"],
                catalog_id=ids["catalog"],
                display_name="Local admin (JIT)",
                group_id=ids["jit-group"],
                description="Time-limited local administrator rights on your PC.",
            ),
            AccessPackage(
                id=ids["other-package"],
                catalog_id=ids["catalog"],
                display_name="Sales tools",
                group_id=ids["other-group"],
            ),
        ],
        assignment_policies=[policy, other_policy],
        slack_team_id="T0CONTOSO",
        slack_users=[
            SlackUser(id=f"U0{n.upper()}", upn=f"{n}@{domain}", email=f"{n}@{domain}", name=n)
            for n in ("alice", "bob", "carol", "dave", "erin", "gary")
        ],
        slack_channels=[
            Channel(id="C0ITADMINS", name="it-admins"),
            Channel(id="C0APPROVALS", name="admin-approvals"),
        ],
        teams_users=[
            TeamsUser(id=f"29:1{demo_id('teams-' + n).replace('-', '')}", upn=f"{n}@{domain}")
            for n in ("alice", "bob", "carol", "dave", "erin", "gary")
        ],
        teams_channels=[
            Channel(id="19:itadmins0000000000000000000000@thread.tacv2", name="IT admins"),
            Channel(id="19:approvals000000000000000000000@thread.tacv2", name="Admin approvals"),
        ],
    )
