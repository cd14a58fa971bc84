//! The team: members and their roles, invitations by mail, and the businesses a person
//! belongs to.

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{Redirect, Response},
    routing::{get, post},
};
use leptos::prelude::*;
use secrecy::SecretString;
use serde::Deserialize;

use super::{
    CsrfForm, DashForm, Signed, Web,
    auth::{nav, needs_reauth, shown, status_of},
    forbidden, signed_in_redirect, store_failed,
    views::{Csrf, FormError, Notice, document, message_page},
};
use crate::{
    accounts::{AccountError, Permission, Role},
    domain::ids::UserId,
    startup::AppState,
    store::TeamChange,
    time::{format_utc, now_ms},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard/team", get(team))
        .route("/dashboard/team/invite", post(invite))
        .route("/dashboard/team/invite/cancel", post(cancel_invite))
        .route("/dashboard/team/{user}/role", post(change_role))
        .route("/dashboard/team/{user}/remove", post(remove))
        .route("/dashboard/business", post(switch_business))
        .route("/dashboard/invite/{token}", get(invite_page).post(accept))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TeamQuery {
    done: String,
    error: String,
}

/// Whether `actor` may give or take `role` (only owners touch owners).
fn may_assign(actor: Role, role: Role) -> bool {
    actor.may(Permission::ManageTeam)
        && (role != Role::Owner || actor.may(Permission::ManageOwners))
}

async fn team(
    State(state): State<AppState>,
    web: Web,
    signed: Signed,
    axum::extract::Query(q): axum::extract::Query<TeamQuery>,
) -> Response {
    let session = &signed.0;
    let loaded = async {
        let members = state.store.members(&session.merchant.id).await?;
        let invites = state
            .store
            .pending_invites(&session.merchant.id, now_ms())
            .await?;
        let businesses = state.store.memberships(&session.user.id).await?;
        Ok::<_, crate::store::StoreError>((members, invites, businesses))
    };
    let (members, invites, businesses) = match loaded.await {
        Ok(v) => v,
        Err(e) => return store_failed(e),
    };
    let manage = signed.may(Permission::ManageTeam);
    let actor = session.role;
    let me = session.user.id.clone();
    let notice = match q.done.as_str() {
        "invited" => Some("Invitation sent.".to_owned()),
        "withdrawn" => Some("Invitation withdrawn: its link no longer works.".to_owned()),
        "changed" => Some("Role changed.".to_owned()),
        "removed" => Some("Removed from the team; their sessions here ended.".to_owned()),
        _ => None,
    };
    let error = match q.error.as_str() {
        "last_owner" => Some((
            "A business always keeps at least one owner.".to_owned(),
            "last_owner",
        )),
        _ => None,
    };
    let rows = members
        .into_iter()
        .map(|m| {
            let editable = manage && m.user_id != me && may_assign(actor, m.role);
            let role_action = format!("/dashboard/team/{}/role", m.user_id);
            let remove_action = format!("/dashboard/team/{}/remove", m.user_id);
            let options = Role::ALL
                .into_iter()
                .filter(|r| may_assign(actor, *r))
                .map(|r| view! { <option value=r.as_str() selected=r == m.role>{r.as_str()}</option> })
                .collect_view();
            let csrf = web.csrf.clone();
            view! {
                <tr data-member=m.email.clone()>
                    <td>{m.email.clone()}</td>
                    <td>{m.role.as_str()}</td>
                    <td>{if m.two_factor { "on" } else { "off" }}</td>
                    <td>{format_utc(m.since)}</td>
                    <td>{editable.then(|| view! {
                        <form method="post" action=role_action class="inline">
                            <Csrf token=csrf.clone() />
                            <select name="role" aria-label="Role">{options}</select>
                            <button type="submit" class="link">"Change"</button>
                        </form>
                        " · "
                        <form method="post" action=remove_action class="inline">
                            <Csrf token=csrf.clone() />
                            <button type="submit" class="link">"Remove"</button>
                        </form>
                    })}</td>
                </tr>
            }
        })
        .collect_view();
    let may_invite = actor.may(Permission::ManageTeam);
    let invite_rows = invites
        .into_iter()
        .map(|i| {
            let withdraw = (may_invite && i.role.is_some_and(|r| may_assign(actor, r))).then(|| view! {
                <form method="post" action="/dashboard/team/invite/cancel" class="inline">
                    <Csrf token=web.csrf.clone() />
                    <input type="hidden" name="invite" value=i.token_hash.clone() />
                    <button type="submit" class="danger">"Withdraw"</button>
                </form>
            });
            view! {
                <tr data-invite=i.email.clone()><td>{i.email.clone()}</td><td>{i.role.map(Role::as_str)}</td><td>{format_utc(i.expires_at)}</td><td>{withdraw}</td></tr>
            }
        })
        .collect_view();
    let invite_options = Role::ALL
        .into_iter()
        .filter(|r| may_assign(actor, *r))
        .map(
            |r| view! { <option value=r.as_str() selected=r == Role::Viewer>{r.as_str()}</option> },
        )
        .collect_view();
    let many = businesses.len() > 1;
    let business_rows = businesses
        .into_iter()
        .map(|(m, role)| {
            let current = m.id == session.merchant.id;
            let csrf = web.csrf.clone();
            view! {
                <li>{m.name.clone()} " (" {role.as_str()} ") "
                    {if current {
                        view! { <strong>"current"</strong> }.into_any()
                    } else {
                        view! {
                            <form method="post" action="/dashboard/business" class="inline">
                                <Csrf token=csrf />
                                <input type="hidden" name="merchant" value=m.id.to_string() />
                                <button type="submit" class="link">"Switch"</button>
                            </form>
                        }.into_any()
                    }}
                </li>
            }
        })
        .collect_view();
    let body = view! {
        <h1>"Team"</h1>
        <Notice notice />
        <FormError error />
        <table>
            <thead><tr><th>"Member"</th><th>"Role"</th><th>"Two-factor"</th><th>"Since (UTC)"</th><th></th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
        {manage.then(|| view! {
            <section class="card">
                <h2>"Invite someone"</h2>
                <form method="post" action="/dashboard/team/invite">
                    <Csrf token=web.csrf.clone() />
                    <label for="email">"Email"</label>
                    <input id="email" type="email" name="email" required />
                    <label for="role">"Role"</label>
                    <select id="role" name="role">{invite_options}</select>
                    <button type="submit">"Send the invitation"</button>
                </form>
                <p class="hint">"Roles: an owner can do everything; an admin runs the business (refunds, settings, the team) but cannot touch owners or live credentials; a developer manages keys and webhooks and sees payments; a viewer only reads. See the README's permission table."</p>
            </section>
            <h2>"Invitations waiting"</h2>
            <table><thead><tr><th>"Email"</th><th>"Role"</th><th>"Expires (UTC)"</th><th></th></tr></thead><tbody>{invite_rows}</tbody></table>
        })}
        {many.then(|| view! {
            <section class="card"><h2>"Your businesses"</h2><ul>{business_rows}</ul></section>
        })}
    };
    web.page(
        StatusCode::OK,
        document("Team", Some(nav(session, &web, "team")), body.into_any()),
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InviteForm {
    csrf: String,
    email: String,
    role: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CancelInviteForm {
    csrf: String,
    invite: String,
}

/// `POST /dashboard/team/invite/cancel`: withdraws a pending invitation; its link no
/// longer works.
async fn cancel_invite(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    DashForm(form): DashForm<CancelInviteForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    if !signed.may(Permission::ManageTeam) {
        return forbidden(&web, "withdraw invitations");
    }
    let session = &signed.0;
    match state
        .store
        .cancel_invite(&session.merchant.id, &form.invite, now_ms())
        .await
    {
        Ok(withdrawn) => {
            if withdrawn {
                signed
                    .audit(
                        &state,
                        &web,
                        "team.invitation_withdrawn",
                        &form.invite.chars().take(12).collect::<String>(),
                    )
                    .await;
            }
            web.finish(Redirect::to("/dashboard/team?done=withdrawn"))
        }
        Err(e) => store_failed(e),
    }
}

async fn invite(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    DashForm(form): DashForm<InviteForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    let Some(role) = Role::parse(&form.role) else {
        return web.page(
            StatusCode::BAD_REQUEST,
            message_page(
                "Unknown role",
                "parameter_invalid",
                "Choose one of the roles offered.",
                Some(("/dashboard/team", "Back")),
            ),
        );
    };
    if !may_assign(signed.0.role, role) {
        return forbidden(&web, "invite people with that role");
    }
    if let Some(r) = needs_reauth(&signed, "/dashboard/team") {
        return r;
    }
    match state
        .accounts
        .invite(&signed.0, &form.email, role, &web.ip)
        .await
    {
        Ok(_) => web.finish(Redirect::to("/dashboard/team?done=invited")),
        Err(e) => web.page(
            status_of(&e),
            message_page(
                "Invitation not sent",
                e.code(),
                &shown(&e).0,
                Some(("/dashboard/team", "Back")),
            ),
        ),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RoleForm {
    csrf: String,
    role: String,
}

/// Checks a change to another member: permission, not oneself, owners only by owners.
async fn team_change(
    state: &AppState,
    web: &Web,
    signed: &Signed,
    user: &str,
    role: Option<Role>,
) -> Response {
    let session = &signed.0;
    let Some(user) = UserId::parse(user) else {
        return web.page(
            StatusCode::NOT_FOUND,
            message_page(
                "No such member",
                "member_not_found",
                "There is no such member.",
                Some(("/dashboard/team", "Back")),
            ),
        );
    };
    if user == session.user.id {
        return web.page(
            StatusCode::BAD_REQUEST,
            message_page(
                "Not yourself",
                "parameter_invalid",
                "Ask another owner or admin to change your own role.",
                Some(("/dashboard/team", "Back")),
            ),
        );
    }
    let members = match state.store.members(&session.merchant.id).await {
        Ok(m) => m,
        Err(e) => return store_failed(e),
    };
    let Some(member) = members.into_iter().find(|m| m.user_id == user) else {
        return web.page(
            StatusCode::NOT_FOUND,
            message_page(
                "No such member",
                "member_not_found",
                "There is no such member.",
                Some(("/dashboard/team", "Back")),
            ),
        );
    };
    if !may_assign(session.role, member.role) || role.is_some_and(|r| !may_assign(session.role, r))
    {
        return forbidden(web, "change that member");
    }
    if let Some(r) = needs_reauth(signed, "/dashboard/team") {
        return r;
    }
    let now = now_ms();
    match state
        .store
        .change_membership(&session.merchant.id, &user, role, now)
        .await
    {
        Ok(TeamChange::Done) => {
            let (action, detail, done) = match role {
                Some(r) => (
                    "team.role_changed",
                    format!("{}: {} → {r}", member.email, member.role),
                    "changed",
                ),
                None => ("team.removed", member.email.clone(), "removed"),
            };
            signed.audit(state, web, action, &detail).await;
            web.finish(Redirect::to(&format!("/dashboard/team?done={done}")))
        }
        Ok(TeamChange::LastOwner) => web.finish(Redirect::to("/dashboard/team?error=last_owner")),
        Ok(TeamChange::NotMember) => web.page(
            StatusCode::NOT_FOUND,
            message_page(
                "No such member",
                "member_not_found",
                "There is no such member.",
                Some(("/dashboard/team", "Back")),
            ),
        ),
        Err(e) => store_failed(e),
    }
}

async fn change_role(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    Path(user): Path<String>,
    DashForm(form): DashForm<RoleForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    let Some(role) = Role::parse(&form.role) else {
        return web.page(
            StatusCode::BAD_REQUEST,
            message_page(
                "Unknown role",
                "parameter_invalid",
                "Choose one of the roles offered.",
                Some(("/dashboard/team", "Back")),
            ),
        );
    };
    team_change(&state, &web, &signed, &user, Some(role)).await
}

async fn remove(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    Path(user): Path<String>,
    DashForm(form): DashForm<CsrfForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    team_change(&state, &web, &signed, &user, None).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BusinessForm {
    csrf: String,
    merchant: String,
}

async fn switch_business(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    DashForm(form): DashForm<BusinessForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    let session = &signed.0;
    let memberships = match state.store.memberships(&session.user.id).await {
        Ok(m) => m,
        Err(e) => return store_failed(e),
    };
    let Some((merchant, _)) = memberships
        .into_iter()
        .find(|(m, _)| m.id.as_str() == form.merchant)
    else {
        return forbidden(&web, "open that business");
    };
    if let Err(e) = state
        .store
        .set_session_merchant(&session.token_hash, &merchant.id)
        .await
    {
        return store_failed(e);
    }
    web.finish(Redirect::to("/dashboard/payments"))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AcceptForm {
    csrf: String,
    password: String,
}

fn invite_view(
    web: &Web,
    token: &str,
    view_: &crate::accounts::InviteView,
    error: Option<(String, &'static str)>,
) -> String {
    let action = format!("/dashboard/invite/{token}");
    let has_account = view_.has_account;
    let body = view! {
        <section class="card narrow">
            <h1>{format!("Join {}", view_.merchant)}</h1>
            <p>{format!("You are invited as {} ({}).", view_.role, view_.email)}</p>
            <FormError error />
            <form method="post" action=action>
                <Csrf token=web.csrf.clone() />
                {if has_account {
                    view! {
                        <label for="password">"Your Malipo password"</label>
                        <input id="password" type="password" name="password" autocomplete="current-password" required />
                    }.into_any()
                } else {
                    view! {
                        <label for="password">"Choose a password"</label>
                        <input id="password" type="password" name="password" autocomplete="new-password" minlength="12" required />
                        <p class="hint">"At least 12 characters."</p>
                    }.into_any()
                }}
                <button type="submit">"Accept the invitation"</button>
            </form>
        </section>
    };
    document("Invitation", None, body.into_any())
}

async fn invite_page(
    State(state): State<AppState>,
    web: Web,
    Path(token): Path<String>,
) -> Response {
    match state.accounts.invite_view(&token).await {
        Ok(Some(v)) => web.page(StatusCode::OK, invite_view(&web, &token, &v, None)),
        Ok(None) => web.page(
            StatusCode::GONE,
            message_page(
                "Link expired",
                "link_expired",
                "This invitation has expired or was used already. Ask for a new one.",
                None,
            ),
        ),
        Err(e) => store_failed(e),
    }
}

async fn accept(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    Path(token): Path<String>,
    DashForm(form): DashForm<AcceptForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    let view_ = match state.accounts.invite_view(&token).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            return web.page(
                StatusCode::GONE,
                message_page(
                    "Link expired",
                    "link_expired",
                    "This invitation has expired or was used already. Ask for a new one.",
                    None,
                ),
            );
        }
        Err(e) => return store_failed(e),
    };
    match state
        .accounts
        .accept_invite(
            &token,
            SecretString::from(form.password),
            &web.ip,
            web.user_agent.as_deref(),
        )
        .await
    {
        Ok(started) => {
            let to = if started.needs_second_factor {
                "/dashboard/sign-in/two-factor"
            } else {
                "/dashboard/payments"
            };
            signed_in_redirect(&state, &web, &started.token, to)
        }
        Err(AccountError::BadLink) => web.page(
            StatusCode::GONE,
            message_page(
                "Link expired",
                "link_expired",
                "This invitation has expired or was used already.",
                None,
            ),
        ),
        Err(e) => web.page(
            status_of(&e),
            invite_view(&web, &token, &view_, Some(shown(&e))),
        ),
    }
}
