//! Roles in a merchant's team and what each may do. The table here is the one in the
//! README ("Roles"); a unit test walks every cell of it.

use std::fmt;

/// A person's role in one merchant's team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything, including the team, live credentials and the audit log. A merchant
    /// always has at least one.
    Owner,
    /// Runs the business day to day: refunds, settings, the team (but not owners).
    Admin,
    /// Integrates: keys, webhooks, embed origins; sees payments; cannot move money.
    Developer,
    /// Reads payments and refunds; changes nothing.
    Viewer,
}

/// Something a dashboard user may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// See payments, refunds and their timelines; export them.
    ViewPayments,
    /// Refund a payment (whole or in part).
    Refund,
    /// Resend webhook deliveries (one, or many at once).
    ResendWebhooks,
    /// Create, roll and revoke API keys (test mode's; live secret keys need
    /// [`Permission::ManageLiveKeys`] too: a live secret key can refund through the API).
    ManageKeys,
    /// Create and roll live secret keys.
    ManageLiveKeys,
    /// Add and remove webhook endpoints and embed origins.
    ManageWebhooks,
    /// Business name, branding, support contacts.
    ManageSettings,
    /// Switch rails on or off per mode and store live operator credentials.
    ManageRails,
    /// Invite people, change roles (not to or from owner), remove people.
    ManageTeam,
    /// Make someone an owner, or change an owner.
    ManageOwners,
    /// Read the audit log.
    ViewAudit,
}

impl Permission {
    pub const ALL: [Permission; 11] = [
        Permission::ViewPayments,
        Permission::Refund,
        Permission::ResendWebhooks,
        Permission::ManageKeys,
        Permission::ManageLiveKeys,
        Permission::ManageWebhooks,
        Permission::ManageSettings,
        Permission::ManageRails,
        Permission::ManageTeam,
        Permission::ManageOwners,
        Permission::ViewAudit,
    ];
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Developer, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The permission table. Deny by default: a permission added later is nobody's
    /// until it is written here.
    pub fn may(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Owner => true,
            Role::Admin => matches!(
                permission,
                ViewPayments
                    | Refund
                    | ResendWebhooks
                    | ManageKeys
                    | ManageLiveKeys
                    | ManageWebhooks
                    | ManageSettings
                    | ManageTeam
            ),
            Role::Developer => matches!(
                permission,
                ViewPayments | ResendWebhooks | ManageKeys | ManageWebhooks
            ),
            Role::Viewer => matches!(permission, ViewPayments),
        }
    }

    /// Whether this role must have two-factor sign-in on before acting for a merchant
    /// that takes live payments.
    pub fn needs_two_factor_for_live(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::{Permission::*, *};

    /// Every cell of the README's table, written out: a change to the rules must change
    /// this test too.
    #[test]
    fn the_permission_table_is_exactly_the_documented_one() {
        let table: [(Permission, [bool; 4]); 11] = [
            //               owner  admin  developer viewer
            (ViewPayments, [true, true, true, true]),
            (Refund, [true, true, false, false]),
            (ResendWebhooks, [true, true, true, false]),
            (ManageKeys, [true, true, true, false]),
            (ManageLiveKeys, [true, true, false, false]),
            (ManageWebhooks, [true, true, true, false]),
            (ManageSettings, [true, true, false, false]),
            (ManageRails, [true, false, false, false]),
            (ManageTeam, [true, true, false, false]),
            (ManageOwners, [true, false, false, false]),
            (ViewAudit, [true, false, false, false]),
        ];
        assert_eq!(table.len(), Permission::ALL.len());
        for (permission, allowed) in table {
            for (role, expected) in Role::ALL.into_iter().zip(allowed) {
                assert_eq!(role.may(permission), expected, "{role} {permission:?}");
            }
        }
        for p in Permission::ALL {
            assert!(table.iter().any(|(q, _)| *q == p), "{p:?} not in the table");
        }
    }

    #[test]
    fn roles_round_trip_and_only_owners_and_admins_need_two_factor_for_live() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("Owner"), None);
        assert_eq!(Role::parse("root"), None);
        let needs: Vec<Role> = Role::ALL
            .into_iter()
            .filter(|r| r.needs_two_factor_for_live())
            .collect();
        assert_eq!(needs, [Role::Owner, Role::Admin]);
    }
}
