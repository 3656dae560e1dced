//! The home page (`GET /`): the professional, the search form, "Mes
//! dernières recherches" and the unseen results of the last days, one
//! entry per dossier (user guide 3.1.1: "marquer comme vu" removes the
//! dossier from the list).

use std::collections::{HashMap, HashSet};

use espace_ps_access::{Action, DossierRoles, Resource, Via};
use espace_ps_records::{RecentKey, RecentResult, Records};

use super::views::{self, HomePage, PatientView, ReportLink, UnseenResult};
use super::{fr_date, recent_of, Ctx};
use crate::access::{Access, AccessError};
use crate::session::SessionData;
use crate::state::PortalDb;
use crate::web::Resp;

/// How many dossiers "Derniers résultats non vus" lists (the newest).
pub const HOME_RESULTS_CAP: usize = 20;

pub async fn home(ctx: Ctx<'_>) -> Resp {
    let list = match (&ctx.app.records, ctx.session.professional.rpps.is_some()) {
        (Some(records), true) => {
            let since = crate::clock::today()
                - time::Duration::days(i64::from(ctx.app.config.portal.unseen_days));
            match unseen_entries(
                records,
                &ctx.app.db,
                &ctx.app.access,
                &ctx.session,
                &super::iso(since),
            )
            .await
            {
                Ok(l) => l,
                Err(e) => return ctx.unavailable(&e),
            }
        }
        _ => UnseenList::default(),
    };
    let recent: Vec<PatientView> = ctx
        .session
        .recent_patients
        .iter()
        .map(PatientView::of)
        .collect();
    let more = more_text(list.more, list.more_at_least);
    let results: Vec<UnseenResult> = list.entries.into_iter().map(UnseenEntry::view).collect();
    ctx.render(
        "home",
        "Accueil",
        HomePage {
            more,
            results,
            recent,
            unseen_days: ctx.app.config.portal.unseen_days,
            has_rpps: ctx.session.professional.rpps.is_some(),
        },
    )
}

/// "Et 1 autre résultat non vu…", "Et 12 autres résultats non vus…", or
/// nothing; `at_least`: "Et au moins 12 autres résultats non vus…" (the
/// count of the [`MAX_RECENT`] newest reports, when there are more).
pub fn more_text(more: usize, at_least: bool) -> Option<String> {
    let bound = if at_least { "au moins " } else { "" };
    match more {
        0 => None,
        1 => Some(format!(
            "Et {bound}1 autre résultat non vu : il reste accessible par la recherche du patient."
        )),
        n => Some(format!(
            "Et {bound}{n} autres résultats non vus : ils restent accessibles par la recherche du patient."
        )),
    }
}

/// One dossier of "Derniers résultats non vus": its newest unseen report
/// first.
#[derive(Debug, Clone)]
pub struct UnseenEntry {
    /// The dossier's unseen reports, newest first (never empty).
    pub reports: Vec<RecentResult>,
}

impl UnseenEntry {
    fn view(self) -> UnseenResult {
        let first = &self.reports[0];
        let mut acts: Vec<String> = Vec::new();
        for r in &self.reports {
            let act = r
                .exam
                .as_ref()
                .map(|e| e.act_label.clone())
                .unwrap_or_else(|| r.report.title.clone());
            if !acts.contains(&act) {
                acts.push(act);
            }
        }
        let number = first.dossier.dossier_number.clone();
        UnseenResult {
            patient: PatientView::of(&recent_of(&first.patient)),
            act: acts.join(", "),
            date: fr_date(
                &first
                    .exam
                    .as_ref()
                    .map(|e| e.exam_date.clone())
                    .unwrap_or(first.report.report_date.clone()),
            ),
            dossier: number.clone(),
            seen_url: views::dossier_seen_url(&number),
            reports: self
                .reports
                .iter()
                .map(|r| ReportLink {
                    title: r.report.title.clone(),
                    date: fr_date(&r.report.report_date),
                    url: views::report_url(&r.report.report_id),
                })
                .collect(),
        }
    }
}

/// The unseen list as the page shows it: the first [`HOME_RESULTS_CAP`]
/// entries, and how many other dossiers have unseen results.
#[derive(Debug, Default)]
pub struct UnseenList {
    /// At most [`HOME_RESULTS_CAP`], newest first.
    pub entries: Vec<UnseenEntry>,
    /// The other dossiers with at least one unseen report this professional
    /// may read.
    pub more: usize,
    /// The recent reports were more than [`MAX_RECENT`]: the newest
    /// [`MAX_RECENT`] were read, and `more` counts what they hold (at least
    /// that many).
    pub more_at_least: bool,
}

/// Hard bound on the recent reports read for one home page (their keys:
/// id, dossier, date).
pub const MAX_RECENT: u32 = 5_000;

/// Results dated `since` (`YYYY-MM-DD`) or later, not yet seen, that the
/// engine lets this professional read, grouped by dossier, newest first:
/// the first [`HOME_RESULTS_CAP`] dossiers with their reports, and the
/// count of the others.
///
/// The keys of the recent reports (at most [`MAX_RECENT`]) and the seen
/// marks among them are read (while the professional's roles on their
/// dossiers are, on another connection), once; every report of a listed dossier
/// passes the policy engine, and a dossier past the listed ones is counted
/// at its first report the engine allows (its other reports are neither
/// shown nor counted, so they are not decided). Only the listed reports are
/// read whole. Public for the home page benchmark (`loadtest/home`).
pub async fn unseen_entries(
    records: &Records,
    db: &PortalDb,
    access: &Access,
    session: &SessionData,
    since: &str,
) -> Result<UnseenList, AccessError> {
    let Some(rpps) = &session.professional.rpps else {
        return Ok(UnseenList::default());
    };
    // The keys and their seen marks, and meanwhile the roles: two
    // connections, one wait.
    let ((keys, seen), roles) = tokio::try_join!(
        async {
            let keys = records.recent_report_keys(rpps, since, MAX_RECENT).await?;
            let ids: Vec<String> = keys.iter().map(|k| k.report_id.clone()).collect();
            let seen = if ids.is_empty() {
                HashSet::new()
            } else {
                db.seen_among(session.account_id, &ids).await?
            };
            Ok::<_, AccessError>((keys, seen))
        },
        async { Ok::<_, AccessError>(records.roles_on_recent_dossiers(rpps, since).await?) },
    )?;
    if keys.is_empty() {
        return Ok(UnseenList::default());
    }
    let walk = walk_unseen(&keys, &seen, HOME_RESULTS_CAP, |k| {
        let Some(roles) = roles.get(&k.dossier_number).filter(|r| !r.is_empty()) else {
            return false; // no role on the dossier any more: no
        };
        access.decide(
            session,
            Action::ViewReport,
            Resource::Report {
                id: k.report_id.clone(),
                dossier_id: k.dossier_number.clone(),
            },
            Via::CareTeam,
            vec![DossierRoles {
                dossier_id: k.dossier_number.clone(),
                roles: roles.clone(),
            }],
        )
    });
    let shown: Vec<String> = walk
        .listed
        .iter()
        .flatten()
        .map(|&i| keys[i].report_id.clone())
        .collect();
    let mut rows: HashMap<String, RecentResult> = records
        .recent_results(&shown, &roles)
        .await?
        .into_iter()
        .map(|r| (r.report.report_id.clone(), r))
        .collect();
    let entries = walk
        .listed
        .iter()
        .map(|reports| UnseenEntry {
            reports: reports
                .iter()
                .filter_map(|&i| rows.remove(&keys[i].report_id))
                .collect(),
        })
        // A report removed from the records meanwhile.
        .filter(|e| !e.reports.is_empty())
        .collect();
    Ok(UnseenList {
        entries,
        more: walk.more,
        more_at_least: keys.len() >= MAX_RECENT as usize,
    })
}

/// What [`walk_unseen`] found.
#[derive(Debug, PartialEq, Eq)]
pub struct Walk {
    /// The listed dossiers, newest first: the indexes (in the keys) of
    /// their unseen allowed reports, newest first.
    pub listed: Vec<Vec<usize>>,
    /// Other dossiers with an unseen allowed report.
    pub more: usize,
}

/// Walks the recent reports (newest first): skips the seen ones, groups
/// the others by dossier in the order of each dossier's newest allowed
/// report, lists the first `cap` dossiers with all their allowed reports
/// and counts the others. `allowed` is asked about every unseen report of
/// a listed dossier, and about the unseen reports of another dossier only
/// until one is allowed: the answer is the one deciding every report would
/// give.
pub fn walk_unseen(
    keys: &[RecentKey],
    seen: &HashSet<String>,
    cap: usize,
    mut allowed: impl FnMut(&RecentKey) -> bool,
) -> Walk {
    let mut listed: Vec<Vec<usize>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut counted: HashSet<&str> = HashSet::new();
    for (i, k) in keys.iter().enumerate() {
        let dossier = k.dossier_number.as_str();
        if seen.contains(&k.report_id) || counted.contains(dossier) || !allowed(k) {
            continue;
        }
        match index.get(dossier) {
            Some(&e) => listed[e].push(i),
            None if listed.len() < cap => {
                index.insert(dossier, listed.len());
                listed.push(vec![i]);
            }
            None => {
                counted.insert(dossier);
            }
        }
    }
    Walk {
        listed,
        more: counted.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_is_said_in_french_plurals() {
        assert_eq!(more_text(0, false), None);
        assert_eq!(
            more_text(1, false).unwrap(),
            "Et 1 autre résultat non vu : il reste accessible par la recherche du patient."
        );
        assert_eq!(
            more_text(12, false).unwrap(),
            "Et 12 autres résultats non vus : ils restent accessibles par la recherche du patient."
        );
        assert_eq!(
            more_text(1, true).unwrap(),
            "Et au moins 1 autre résultat non vu : il reste accessible par la recherche du patient."
        );
        assert_eq!(
            more_text(1_980, true).unwrap(),
            "Et au moins 1980 autres résultats non vus : ils restent accessibles par la recherche du patient."
        );
        assert_eq!(more_text(0, true), None);
    }

    fn key(i: usize, dossier: usize) -> RecentKey {
        RecentKey {
            report_id: format!("R{i:05}"),
            dossier_number: format!("D{dossier:04}"),
            report_date: "2025-06-15".into(),
        }
    }

    /// The page of a professional with 2,000 unseen reports over 500
    /// dossiers: the 20 newest dossiers with every report of theirs, 480
    /// others counted, and one decision per counted dossier only.
    #[test]
    fn two_thousand_unseen_reports() {
        // Report i is on dossier i % 500: dossiers 0..20 are the newest.
        let keys: Vec<RecentKey> = (0..2_000).map(|i| key(i, i % 500)).collect();
        let mut asked = 0;
        let walk = walk_unseen(&keys, &HashSet::new(), 20, |_| {
            asked += 1;
            true
        });
        assert_eq!(walk.listed.len(), 20);
        for (d, reports) in walk.listed.iter().enumerate() {
            assert_eq!(reports, &[d, d + 500, d + 1_000, d + 1_500], "dossier {d}");
        }
        assert_eq!(walk.more, 480);
        assert_eq!(asked, 20 * 4 + 480);
    }

    /// Deciding only what is shown or counted gives the answer of deciding
    /// every report: seen reports and refused ones are neither listed nor
    /// counted, a dossier whose newest reports are refused takes the place
    /// of its newest allowed one, and one allowed report is enough to count
    /// a dossier.
    #[test]
    fn the_walk_answers_as_deciding_every_report() {
        let mut keys = Vec::new();
        let mut rng = 0x9e37_79b9_u64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n) as usize
        };
        for i in 0..2_000 {
            keys.push(key(i, next(300)));
        }
        let seen: HashSet<String> = keys
            .iter()
            .filter(|_| next(4) == 0)
            .map(|k| k.report_id.clone())
            .collect();
        let refused: HashSet<String> = keys
            .iter()
            .filter(|_| next(3) == 0)
            .map(|k| k.report_id.clone())
            .collect();
        let walk = walk_unseen(&keys, &seen, 20, |k| !refused.contains(&k.report_id));

        // The reference: every report decided, then grouped.
        let kept: Vec<usize> = (0..keys.len())
            .filter(|&i| {
                !seen.contains(&keys[i].report_id) && !refused.contains(&keys[i].report_id)
            })
            .collect();
        let mut order: Vec<&str> = Vec::new();
        let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
        for &i in &kept {
            let d = keys[i].dossier_number.as_str();
            if !groups.contains_key(d) {
                order.push(d);
            }
            groups.entry(d).or_default().push(i);
        }
        let expected: Vec<Vec<usize>> = order.iter().take(20).map(|d| groups[d].clone()).collect();
        assert_eq!(walk.listed, expected);
        assert_eq!(walk.more, order.len() - 20);
        assert!(walk.more > 200, "{}", walk.more);
        // A seen report is never listed.
        assert!(walk
            .listed
            .iter()
            .flatten()
            .all(|&i| !seen.contains(&keys[i].report_id)));
    }

    #[test]
    fn nothing_allowed_nothing_listed_or_counted() {
        let keys: Vec<RecentKey> = (0..50).map(|i| key(i, i % 30)).collect();
        let walk = walk_unseen(&keys, &HashSet::new(), 20, |_| false);
        assert_eq!(
            walk,
            Walk {
                listed: Vec::new(),
                more: 0
            }
        );
        let all_seen: HashSet<String> = keys.iter().map(|k| k.report_id.clone()).collect();
        let walk = walk_unseen(&keys, &all_seen, 20, |_| {
            panic!("a seen report is not decided")
        });
        assert_eq!(
            walk,
            Walk {
                listed: Vec::new(),
                more: 0
            }
        );
    }
}
