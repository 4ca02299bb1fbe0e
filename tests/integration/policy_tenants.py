"""Tenants whose local-admin package has several assignment policies (the tenant file's
``assignmentPolicies`` list, several entries with the same ``accessPackage.id``)."""

from __future__ import annotations

import copy

from sandbox.tenant import Group, Tenant, demo_id, demo_tenant

ENGINEERS, SUPPORT = demo_id("engineers"), demo_id("support")
ENGINEERS_POLICY, SUPPORT_POLICY = demo_id("policy"), demo_id("support-policy")


def _group_targets(group_id: str) -> dict[str, object]:
    return {
        "allowedTargetScope": "specificDirectoryUsers",
        "specificAllowedTargets": [
            {"@odata.type": "#microsoft.graph.groupMembers", "groupId": group_id}
        ],
    }


def two_policy_tenant() -> Tenant:
    """The demo tenant whose local-admin package has two self-service policies for two groups:

    - ``ENGINEERS_POLICY`` (the demo policy: 8 h, approval) for Engineers: Alice and Dave;
    - ``SUPPORT_POLICY`` (4 h, no approval) for Support: Bob and Dave.

    Carol is in neither group; Dave is in both.
    """
    tenant = demo_tenant()
    ids = {u.user_principal_name.split("@")[0]: u.id for u in tenant.users}
    tenant.groups += [
        Group(
            id=ENGINEERS,
            display_name="Engineers",
            security_identifier="S-1-12-1-1-2-3-4",
            members=[ids["alice"], ids["dave"]],
        ),
        Group(
            id=SUPPORT,
            display_name="Support",
            security_identifier="S-1-12-1-5-6-7-8",
            members=[ids["bob"], ids["dave"]],
        ),
    ]
    engineers = tenant.assignment_policies[0]
    assert engineers["id"] == ENGINEERS_POLICY
    support = copy.deepcopy(engineers)
    engineers.update(_group_targets(ENGINEERS))
    support.update(
        {
            "id": SUPPORT_POLICY,
            "displayName": "Local admin: support staff, no approval",
            "expiration": {"type": "afterDuration", "duration": "PT4H", "endDateTime": None},
            "requestApprovalSettings": {
                "isApprovalRequiredForAdd": False,
                "isApprovalRequiredForUpdate": False,
                "isRequestorJustificationRequired": True,
                "stages": [],
            },
            **_group_targets(SUPPORT),
        }
    )
    tenant.assignment_policies.append(support)
    return tenant
