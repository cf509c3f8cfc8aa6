//! The settings forms' shared parts (Zoom連携設定 and 同期設定): one field per
//! console-editable key with its SPEC §8 label, its current value, 「設定済み」 beside an
//! empty secret, 「設定ファイルで指定」 for a key the file sets (read-only, not submitted),
//! the sentence of a refused value beside its field; and the save of one form through
//! `LiveSettings::save` with its audit row in the same transaction.

use actix_web::HttpRequest;
use maud::{Markup, html};

use super::{FormFields, entry, layout::ConsoleError};
use crate::{
    config::Settings,
    http::AppState,
    live::{Change, FieldError, SaveError, is_secret},
    store::audit::{self, AuditKind},
};

/// How a field is typed in.
pub enum FieldKind {
    Text,
    /// Several values, one a line (a `<textarea>`).
    Lines,
    Secret,
    Number,
    Checkbox,
    /// (value, text) options.
    Select(Vec<(String, String)>),
}

/// One field: its key (also the input's `name`), its label (exactly SPEC §8's), its kind and
/// a note under it.
pub struct FieldSpec {
    pub key: &'static str,
    pub label: &'static str,
    pub kind: FieldKind,
    pub note: Option<&'static str>,
}

/// The input's `id`: the key with `.` as `_` (`zoom.account_id` → `zoom_account_id`).
/// The notice of a form refused (422): nothing of `form` was saved; the fields in red say why.
pub fn refused_notice(form: &str) -> Markup {
    html! {
        div.alert role="alert" { p { (form) "は保存していません。赤字の項目を直してから、もう一度保存してください。" } }
    }
}

pub fn field_id(key: &str) -> String {
    key.replace('.', "_")
}

/// What a form shows: values (effective, or as submitted after a refusal), which secrets are
/// stored, the refused fields.
pub struct FormState<'a> {
    pub state: &'a AppState,
    pub values: std::collections::BTreeMap<String, String>,
    pub stored_secrets: Vec<String>,
    pub errors: Vec<FieldError>,
}

impl<'a> FormState<'a> {
    /// The effective values of `keys`, for a fresh form.
    pub async fn current(
        state: &'a AppState,
        keys: &[&str],
    ) -> Result<FormState<'a>, ConsoleError> {
        let settings = state.live.current().await?;
        let mut stored_secrets = Vec::new();
        for key in keys.iter().filter(|k| is_secret(k)) {
            if state.live.is_stored(key).await? {
                stored_secrets.push((*key).to_owned());
            }
        }
        Ok(FormState {
            state,
            values: keys
                .iter()
                .map(|key| ((*key).to_owned(), effective_value(&settings, key)))
                .collect(),
            stored_secrets,
            errors: Vec::new(),
        })
    }

    /// The submitted values of `keys` (secrets never echoed) with the refused fields.
    pub async fn refused(
        state: &'a AppState,
        keys: &[&str],
        fields: &FormFields,
        errors: Vec<FieldError>,
    ) -> Result<FormState<'a>, ConsoleError> {
        let mut form = FormState::current(state, keys).await?;
        for key in keys
            .iter()
            .filter(|k| !is_secret(k) && !state.live.set_by_file(k))
        {
            form.values.insert(
                (*key).to_owned(),
                fields.get(key).unwrap_or_default().to_owned(),
            );
        }
        form.errors = errors;
        Ok(form)
    }

    /// One field.
    pub fn field(&self, spec: &FieldSpec) -> Markup {
        let id = field_id(spec.key);
        let error_id = format!("{id}_error");
        let by_file = self.state.live.set_by_file(spec.key);
        let value = self.values.get(spec.key).map_or("", String::as_str);
        let error = self.errors.iter().find(|e| e.key == spec.key);
        let described = error.map(|_| error_id.clone());
        let label = html! { label for=(id) { (spec.label) } };
        let error_line = html! {
            @if let Some(error) = error { p.error id=(error_id) role="alert" { (error.message) } }
        };
        let from_file = html! { @if by_file { span.note.from-file { "設定ファイルで指定" } } };
        let note = html! { @if let Some(note) = spec.note { p.note { (note) } } };
        match &spec.kind {
            FieldKind::Checkbox => html! {
                div.field {
                    div.choice {
                        input type="checkbox" id=(id) name=(spec.key) value="true"
                            checked[value == "true"] disabled[by_file] aria-describedby=[described.as_deref()];
                        (label)
                    }
                    (from_file) (error_line) (note)
                }
            },
            FieldKind::Select(options) => html! {
                div.field {
                    (label) (error_line)
                    select id=(id) name=(spec.key) disabled[by_file] aria-describedby=[described.as_deref()] {
                        @for (option, text) in options {
                            option value=(option) selected[option == value] { (text) }
                        }
                    }
                    (from_file) (note)
                }
            },
            FieldKind::Secret => {
                let stored = self.stored_secrets.iter().any(|k| k == spec.key);
                html! {
                    div.field {
                        (label) (error_line)
                        input type="password" id=(id) name=(spec.key) value="" autocomplete="new-password"
                            disabled[by_file] aria-describedby=[described.as_deref()];
                        @if by_file { (from_file) }
                        @else if stored { span.stored { "設定済み" } span.note { "（空欄のままなら、保存されている値を使い続けます）" } }
                        (note)
                    }
                }
            }
            FieldKind::Lines => html! {
                div.field {
                    (label) (error_line)
                    textarea id=(id) name=(spec.key) rows="3"
                        readonly[by_file] disabled[by_file] aria-describedby=[described.as_deref()] { (value) }
                    (from_file) (note)
                }
            },
            FieldKind::Text | FieldKind::Number => {
                let kind = if matches!(spec.kind, FieldKind::Number) {
                    "number"
                } else {
                    "text"
                };
                html! {
                    div.field {
                        (label) (error_line)
                        input type=(kind) id=(id) name=(spec.key) value=(value)
                            readonly[by_file] disabled[by_file] aria-describedby=[described.as_deref()];
                        (from_file) (note)
                    }
                }
            }
        }
    }
}

/// One settings form: its fields, the CSRF field and its button.
pub fn settings_form(
    console: &super::session::Console,
    action: &str,
    form: &FormState<'_>,
    specs: &[FieldSpec],
    button: &str,
) -> Markup {
    html! {
        form method="post" action=(action) novalidate {
            (console.csrf_field())
            @for spec in specs { (form.field(spec)) }
            button type="submit" { (button) }
        }
    }
}

/// The effective value of a console key, as a form shows it (a secret: empty).
pub fn effective_value(settings: &Settings, key: &str) -> String {
    let sync = &settings.sync;
    match key {
        "zoom.account_id" => settings.zoom.account_id.clone(),
        "zoom.client_id" => settings.zoom.client_id.clone(),
        "groupware.base_url" => settings.groupware.base_url.clone(),
        "groupware.admin_login_id" => settings.groupware.admin_login_id.clone(),
        "groupware.timezone" => settings.groupware.timezone.name().to_owned(),
        "sync.location" => sync.location.clone(),
        "sync.on_reschedule" => match sync.on_reschedule {
            crate::domain::policy::ReschedulePolicy::CreateNew => "create_new",
            crate::domain::policy::ReschedulePolicy::Update => "update",
            crate::domain::policy::ReschedulePolicy::Replace => "replace",
        }
        .to_owned(),
        "sync.on_delete" => match sync.on_delete {
            crate::domain::policy::DeletePolicy::Keep => "keep",
            crate::domain::policy::DeletePolicy::Delete => "delete",
        }
        .to_owned(),
        "sync.invite_members" => sync.invite_members.to_string(),
        "sync.poll_interval_seconds" => sync.poll_interval_seconds.to_string(),
        "alerts.email_to" => settings.alerts.email_to.join("\n"),
        "alerts.email_from" => settings.alerts.email_from.clone(),
        "alerts.webhook_url" => settings.alerts.webhook_url.clone(),
        _ => String::new(),
    }
}

/// Saves one form (`keys` that the file leaves out) with its audit row, in one
/// transaction: what changed, or the refused fields (nothing stored).
pub async fn save(
    state: &AppState,
    request: &HttpRequest,
    form_name: &str,
    specs: &[FieldSpec],
    fields: &FormFields,
) -> Result<Result<Vec<Change>, Vec<FieldError>>, ConsoleError> {
    let pairs: Vec<(&str, String)> = specs
        .iter()
        .filter(|spec| !state.live.set_by_file(spec.key))
        .map(|spec| {
            let text = match (&spec.kind, fields.get(spec.key)) {
                (_, Some(text)) => text.to_owned(),
                (FieldKind::Checkbox, None) => "false".to_owned(),
                (_, None) => String::new(),
            };
            (spec.key, text)
        })
        .collect();
    let mut tx = state.store.begin_write().await?;
    match state.live.save(&mut tx, &pairs).await {
        Ok(changes) => {
            let detail = if changes.is_empty() {
                format!("{form_name}: 変更なし")
            } else {
                let described: Vec<String> = changes.iter().map(Change::describe_ja).collect();
                format!("{form_name}: {}", described.join("、"))
            };
            audit::record(
                &mut tx,
                &entry(request, AuditKind::Settings, detail),
                chrono::Utc::now(),
            )
            .await?;
            tx.commit()
                .await
                .map_err(|e| anyhow::anyhow!("cannot commit the settings: {e}"))?;
            Ok(Ok(changes))
        }
        Err(SaveError::Fields(errors)) => {
            tx.rollback()
                .await
                .map_err(|e| anyhow::anyhow!("cannot roll back the settings: {e}"))?;
            Ok(Err(errors))
        }
        Err(SaveError::Storage(error)) => Err(ConsoleError::Internal(error)),
    }
}
