//! How verdicts are shown: a plain text block for people, one JSON object for programs.

use serde_json::json;

use crate::core::dsse::short_keyid;
use crate::core::trust::KeyStanding;
use crate::core::verify::{displayed_labels, Binding, ParagraphChange, Verdict};

/// Whether colour may be used (a terminal, and `NO_COLOR` unset).
pub fn use_colour() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

fn paint(text: &str, code: &str, colour: bool) -> String {
    if colour {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The human-readable verdict, leading with the signed authorship class.
pub fn verdict_text(verdict: &Verdict, article: &str, colour: bool) -> String {
    let mut out = String::new();
    let head = match (&verdict.failure, verdict.authorship()) {
        (None, Some(class)) => format!(
            "{} {article}: {} — signed byline {:?}",
            paint("VERIFIED", "1;32", colour),
            class,
            verdict
                .statement
                .as_ref()
                .map(|s| s.predicate.byline.as_str())
                .unwrap_or("")
        ),
        (None, None) => format!("{} {article}", paint("VERIFIED", "1;32", colour)),
        (Some(f), _) => format!("{} {article}: {f}", paint("NOT VERIFIED", "1;31", colour)),
    };
    out.push_str(&head);
    out.push('\n');
    if let Some(st) = &verdict.statement {
        let p = &st.predicate;
        if verdict.failure.is_some() {
            out.push_str(&format!(
                "  signed as   {} — byline {:?}\n",
                p.authorship, p.byline
            ));
        }
        out.push_str(&format!("  byline      {}\n", p.byline));
        out.push_str(&format!(
            "  authorship  {} ({})\n",
            p.authorship, p.digital_source_type
        ));
        if !p.ai_systems.is_empty() {
            let names: Vec<String> = p
                .ai_systems
                .iter()
                .map(|a| {
                    let mut s = a.name.clone();
                    if let Some(v) = &a.version {
                        s.push_str(&format!(" {v}"));
                    }
                    if let Some(pr) = &a.provider {
                        s.push_str(&format!(" ({pr})"));
                    }
                    s
                })
                .collect();
            out.push_str(&format!("  AI systems  {}\n", names.join(", ")));
        }
        for h in &p.humans {
            out.push_str(&format!("  person      {} ({})\n", h.name, h.role));
        }
        if let Some(e) = &p.editorial_responsibility {
            out.push_str(&format!(
                "  editorial   {} ({}) reviewed it at {}{}\n",
                e.name,
                e.role,
                e.reviewed_at,
                e.policy_url
                    .as_ref()
                    .map(|u| format!("; policy {u}"))
                    .unwrap_or_default()
            ));
        }
        out.push_str(&format!("  article     {}\n", st.subject_name()));
    }
    if let Some(signer) = &verdict.signer {
        out.push_str(&format!(
            "  publisher   {} ({}), as the trust store knows it\n",
            signer.publisher_display(),
            signer.entry.publisher
        ));
        let standing = match &verdict.key_standing {
            Some(KeyStanding::Active) => " (active)".to_string(),
            Some(KeyStanding::Retired { since }) => {
                format!(" (retired key: revoked at {since}, signed before)")
            }
            None => String::new(),
        };
        out.push_str(&format!(
            "  key         {}{standing}\n",
            short_keyid(&signer.keyid)
        ));
    }
    match (&verdict.log, verdict.judged_at) {
        (Some(log), _) => {
            out.push_str(&format!(
                "  signed      {} (the log's integratedTime)\n",
                log.integrated_time
            ));
            let consistency = match verdict.consistency_checked_to {
                Some(size) => format!("consistent with the log's latest checkpoint, size {size}"),
                None => {
                    "consistency with the log's latest checkpoint not checked offline".to_string()
                }
            };
            out.push_str(&format!(
                "  log         index {} in {} (checkpoint size {}; {consistency})\n",
                log.log_index, log.checkpoint.origin, log.checkpoint.size
            ));
        }
        (None, Some(at)) => {
            if let Some(st) = &verdict.statement {
                out.push_str(&format!(
                    "  signed      {} (claimed by the signer)\n",
                    st.predicate.signed_at
                ));
            }
            out.push_str(&format!(
                "  log         never logged: an offline bundle, judged at the present time ({at})\n"
            ));
        }
        (None, None) => {}
    }
    if let Some(b) = verdict.binding {
        let text = match b {
            Binding::Exact => "exact (the bytes are those signed)",
            Binding::Text => {
                "text (the canonical text matches; the bytes differ, e.g. re-rendered)"
            }
        };
        out.push_str(&format!("  binding     {text}\n"));
        out.push_str("  covers      the wording a reader sees, not markup, links or styling\n");
    }
    for w in &verdict.warnings {
        out.push_str(&format!("  {} {w}\n", paint("warning:", "33", colour)));
    }
    for c in verdict.invisible.iter().take(20) {
        out.push_str(&format!(
            "    {} at paragraph {}, character {}\n",
            c.code_point,
            c.paragraph + 1,
            c.offset + 1
        ));
    }
    out
}

/// The verdict as one JSON object (`--json`).
pub fn verdict_json(verdict: &Verdict, article: &str) -> serde_json::Value {
    let st = verdict.statement.as_ref();
    let p = st.map(|s| &s.predicate);
    json!({
        "article": article,
        "verified": verdict.verified(),
        "failure": verdict.failure.as_ref().map(|f| json!({"code": f.code(), "message": f.to_string()})),
        "authorship": p.map(|p| p.authorship),
        "byline": p.map(|p| &p.byline),
        "digitalSourceType": p.map(|p| &p.digital_source_type),
        "aiSystems": p.map(|p| &p.ai_systems),
        "humans": p.map(|p| &p.humans),
        "editorialResponsibility": p.and_then(|p| p.editorial_responsibility.as_ref()),
        "subject": st.map(|s| s.subject_name()),
        "publisher": verdict.signer.as_ref().map(|s| json!({
            "domain": s.entry.publisher,
            "name": s.publisher_display(),
        })),
        "keyid": verdict.signer.as_ref().map(|s| &s.keyid),
        "keyStanding": verdict.key_standing.as_ref().map(|k| match k {
            KeyStanding::Active => json!({"status": "active"}),
            KeyStanding::Retired { since } => json!({"status": "retired", "revokedSince": since}),
        }),
        "signedAt": p.map(|p| p.signed_at),
        "signingTime": verdict.judged_at,
        "timeSource": verdict.judged_at.map(|_| if verdict.log.is_some() { "log" } else { "present" }),
        "logged": verdict.log.is_some(),
        "logIndex": verdict.log.as_ref().map(|l| l.log_index),
        "logOrigin": verdict.log.as_ref().map(|l| &l.checkpoint.origin),
        "consistencyChecked": verdict.consistency_checked_to.is_some(),
        "consistencyCheckedToSize": verdict.consistency_checked_to,
        "binding": verdict.binding,
        "paragraphChanges": verdict.paragraph_changes,
        "displayedByline": verdict.displayed_byline,
        "invisibleCharacters": verdict.invisible,
        "warnings": verdict.warnings,
    })
}

/// The displayed paragraphs with each one's label in the margin (`verify --show`).
pub fn paragraphs_text(verdict: &Verdict) -> String {
    let labels = displayed_labels(verdict);
    let changed: Vec<usize> = verdict
        .paragraph_changes
        .iter()
        .filter_map(|c| match c {
            ParagraphChange::Changed { displayed, .. } | ParagraphChange::Added { displayed } => {
                Some(*displayed)
            }
            ParagraphChange::Removed { .. } => None,
        })
        .collect();
    let mut out = String::from("\n");
    for (i, (text, label)) in verdict.displayed_paragraphs.iter().zip(&labels).enumerate() {
        let margin = match label {
            Some(class) => format!("[{}]", class.margin_label()),
            None if changed.contains(&i) => "[changed]".to_string(),
            None => "[unsigned]".to_string(),
        };
        out.push_str(&format!("{margin:<12}{text}\n"));
    }
    for c in &verdict.paragraph_changes {
        if let ParagraphChange::Removed { signed } = c {
            out.push_str(&format!(
                "{:<12}(signed paragraph {} is missing here)\n",
                "[removed]",
                signed + 1
            ));
        }
    }
    if let Some(e) = verdict
        .statement
        .as_ref()
        .and_then(|s| s.predicate.editorial_responsibility.as_ref())
    {
        out.push_str(&format!(
            "\nEditorial responsibility: {} ({}) reviewed this text at {}{}.\n",
            e.name,
            e.role,
            e.reviewed_at,
            e.policy_url
                .as_ref()
                .map(|u| format!(" under the policy {u}"))
                .unwrap_or_default()
        ));
    }
    out
}

/// The displayed paragraphs with their labels, for `verify --show --json`.
pub fn paragraphs_json(verdict: &Verdict) -> serde_json::Value {
    let labels = displayed_labels(verdict);
    serde_json::Value::Array(
        verdict
            .displayed_paragraphs
            .iter()
            .zip(labels)
            .enumerate()
            .map(|(i, (text, label))| {
                json!({
                    "index": i,
                    "text": text,
                    "authorship": label,
                    "label": label.map(|c| c.margin_label()),
                    "matchesSigned": label.is_some(),
                })
            })
            .collect(),
    )
}

/// The edit chain around the verified manifest, oldest first (`verify --history`).
pub fn history_text(h: &super::server_cmds::History, verdict: &Verdict) -> String {
    let mut out = String::from("\nEdit history (oldest first):\n");
    let line = |out: &mut String,
                index: u64,
                time: &str,
                class: &str,
                byline: &str,
                subject: &str,
                note: &str| {
        out.push_str(&format!(
            "  log index {index:<6} {time}  {class} — {byline:?} — {subject}{note}\n"
        ));
    };
    for e in &h.earlier {
        let note = if e.signature_trusted {
            ""
        } else {
            "  (signature not trusted here)"
        };
        line(
            &mut out,
            e.log_index,
            &e.integrated_time,
            e.authorship.as_str(),
            &e.byline,
            &e.subject,
            note,
        );
    }
    if let (Some(st), Some(log)) = (&verdict.statement, &verdict.log) {
        line(
            &mut out,
            log.log_index,
            &log.integrated_time.to_string(),
            st.predicate.authorship.as_str(),
            &st.predicate.byline,
            st.subject_name(),
            "  <- this article",
        );
    }
    for e in &h.later {
        let note = if e.signature_trusted {
            ""
        } else {
            "  (signature not trusted here)"
        };
        line(
            &mut out,
            e.log_index,
            &e.integrated_time,
            e.authorship.as_str(),
            &e.byline,
            &e.subject,
            note,
        );
    }
    out
}
