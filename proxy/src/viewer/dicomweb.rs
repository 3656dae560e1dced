//! The standard DICOMweb [`StudyResolver`]: the study of a series or an
//! instance is asked of the archive with QIDO-RS
//! (`{qido_root}/series?SeriesInstanceUID=…`,
//! `{qido_root}/instances?SOPInstanceUID=…`) and read from its answer. It
//! needs nothing of the archive but DICOMweb, so espace-ps can front any
//! DICOMweb archive (Orthanc's plugin, dcm4chee, a cloud archive). The gate
//! caches what it answers (`gate::resolution::Studies`).
//!
//! Deny by default: an answer that does not name exactly the UID asked (an
//! archive that ignores the filter, a wildcard) or names two studies for
//! it is not believed.
//!
//! A viewer that opens a series asks for its metadata, then for a frame of
//! each of its instances (OHIF: hundreds of them at once). Each instance
//! would be one more QIDO-RS lookup, made before its frame is forwarded.
//! Two things spare them:
//! - the metadata itself: every `application/dicom+json` answer the gate
//!   forwarded (metadata, a scoped QIDO-RS result) is read on its way to
//!   the browser, and each instance it lists is kept with the study its own
//!   StudyInstanceUID names ([`DicomWebResolver::learn_from_answer`]); it
//!   costs the archive nothing more;
//! - when an instance is looked up all the same (a viewer that asks for a
//!   frame before the metadata), the other instances of its series are
//!   asked in one query in the background
//!   (`{qido_root}/instances?SeriesInstanceUID=…`).
//!
//! Either answer is believed only whole (every instance it lists with one
//! valid StudyInstanceUID; for the series query, every result of that
//! series, in that series' study); an instance none listed is looked up.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use espace_ps_access::viewer::STUDY_PLACEHOLDER;
use serde_json::Value;

use super::cache::TtlCache;
use super::resolver::{ResolveError, StudyResolver};

/// How long espace-ps waits for one answer of the archive.
const TIMEOUT: Duration = Duration::from_secs(5);

/// StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID: (keyword of the
/// query, tag of the answer).
const STUDY_UID: (&str, &str) = ("StudyInstanceUID", "0020000D");
const SERIES_UID: (&str, &str) = ("SeriesInstanceUID", "0020000E");
const SOP_INSTANCE_UID: (&str, &str) = ("SOPInstanceUID", "00080018");

/// How long what a series' query said about its instances is kept (as the
/// gate keeps a lookup's answer).
const SERIES_TTL: Duration = Duration::from_secs(300);
/// Instances kept from series queries; the least used go first beyond it.
const INSTANCES_CAP: usize = 100_000;
/// At most this many instances are asked in one series query.
const SERIES_LIMIT: usize = 5_000;

pub struct DicomWebResolver {
    /// `http://host:port{qido_root}`: the archive's DICOMweb service.
    qido: String,
    /// The viewer page of a study, `{study}` to replace.
    study_page: String,
    /// For espace-ps's own calls to the archive (never the browser's).
    http: reqwest::Client,
    /// SOPInstanceUID → StudyInstanceUID, from the archive's answers to
    /// series queries and the DICOM JSON answers forwarded.
    instances: Arc<TtlCache<String, Arc<str>>>,
    /// SeriesInstanceUID → StudyInstanceUID, from the DICOM JSON answers
    /// forwarded (a study's series query, metadata).
    series: TtlCache<String, Arc<str>>,
    /// Series whose instances were asked (or are being asked) recently.
    series_asked: TtlCache<String, ()>,
}

impl DicomWebResolver {
    /// `upstream`: `http(s)://host:port` of the archive; `qido_root` and
    /// `study_page` as checked in the route table's `[resolver]`.
    pub fn new(
        upstream: &str,
        qido_root: &str,
        study_page: &str,
    ) -> Result<DicomWebResolver, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(DicomWebResolver {
            qido: format!("{upstream}{qido_root}"),
            study_page: study_page.to_owned(),
            http,
            instances: Arc::new(TtlCache::new(INSTANCES_CAP, SERIES_TTL)),
            series: TtlCache::new(INSTANCES_CAP / 10, SERIES_TTL),
            series_asked: TtlCache::new(INSTANCES_CAP / 100, SERIES_TTL),
        })
    }

    /// Asks the archive for the instances of a series resolved to `study`,
    /// in the background, once per [`SERIES_TTL`]; keeps their study if the
    /// answer is believed. A failure only means lookups one by one.
    fn learn_series_instances(&self, series_uid: &str, study: &str) {
        if self.series_asked.contains_key(series_uid) {
            return;
        }
        self.series_asked.insert(series_uid.to_owned(), ());
        let (client, url) = (self.http.clone(), format!("{}/instances", self.qido));
        let (series, study) = (series_uid.to_owned(), study.to_owned());
        let instances = self.instances.clone();
        let limit = SERIES_LIMIT.to_string();
        tokio::spawn(async move {
            let found = async {
                let r = client
                    .get(url)
                    .query(&[
                        (SERIES_UID.0, series.as_str()),
                        ("includefield", STUDY_UID.1),
                        ("limit", limit.as_str()),
                    ])
                    .header(http::header::ACCEPT, "application/dicom+json")
                    .timeout(TIMEOUT)
                    .send()
                    .await?
                    .error_for_status()?;
                r.json::<Value>().await
            };
            match found.await {
                Ok(found) => match instances_in_answer(&found, &series, &study) {
                    Ok(list) => {
                        let study: Arc<str> = study.into();
                        for sop in list {
                            instances.insert(sop, study.clone());
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "series query not believed"),
                },
                Err(e) => tracing::warn!(error = %e.without_url(), "series query failed"),
            }
        });
    }

    /// The StudyInstanceUID of the one resource whose `attribute` is `uid`,
    /// at a QIDO-RS level (`studies`, `series`, `instances`).
    async fn study_of(
        &self,
        level: &str,
        key: (&str, &str),
        uid: &str,
    ) -> Result<String, ResolveError> {
        self.lookup(level, key, uid).await.map(|(study, _)| study)
    }

    /// [`Self::study_of`], with the SeriesInstanceUID its answer gives (an
    /// instance's), if valid.
    async fn lookup(
        &self,
        level: &str,
        (keyword, tag): (&str, &str),
        uid: &str,
    ) -> Result<(String, Option<String>), ResolveError> {
        // A wildcard, a list (`,` or `\`) or anything but a UID would be a
        // search, not a lookup.
        if !is_uid(uid) {
            return Err(ResolveError::Unresolvable("not a DICOM UID"));
        }
        let r = self
            .http
            .get(format!("{}/{level}", self.qido))
            // Two results are enough to see an ambiguous answer.
            .query(&[
                (keyword, uid),
                ("includefield", STUDY_UID.1),
                ("includefield", SERIES_UID.1),
                ("limit", "2"),
            ])
            .header(http::header::ACCEPT, "application/dicom+json")
            .timeout(TIMEOUT)
            .send()
            .await
            .map_err(unreachable)?;
        match r.status() {
            reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::NO_CONTENT => {
                return Err(ResolveError::NotFound)
            }
            s if !s.is_success() => {
                return Err(ResolveError::Unreachable(format!("archive answered {s}")))
            }
            _ => {}
        }
        let found: Value = r.json().await.map_err(unreachable)?;
        let study = study_in_answer(&found, tag, uid)?;
        let series = found
            .get(0)
            .and_then(|r| first_string(r, SERIES_UID.1))
            .filter(|s| is_uid(s))
            .map(str::to_owned);
        Ok((study, series))
    }
}

/// How much of one answer is read to learn its instances; a bigger answer
/// is forwarded without being read.
pub const LEARN_LIMIT: usize = 32 << 20;

/// One object of a DICOM JSON answer, as far as learning reads it; every
/// other attribute is skipped unread.
#[derive(serde::Deserialize)]
struct ListedObject {
    #[serde(rename = "00080018")]
    sop: Option<UidAttribute>,
    #[serde(rename = "0020000E")]
    series: Option<UidAttribute>,
    #[serde(rename = "0020000D")]
    study: Option<UidAttribute>,
}

#[derive(serde::Deserialize)]
struct UidAttribute {
    #[serde(rename = "Value", default)]
    value: Vec<String>,
}

impl UidAttribute {
    /// The one valid UID it holds.
    fn uid(&self) -> Option<&str> {
        match self.value.as_slice() {
            [one] if is_uid(one) => Some(one),
            _ => None,
        }
    }
}

/// What a DICOM JSON answer says about the studies of the resources it
/// lists: (UID, StudyInstanceUID) pairs, sorted.
#[derive(Debug, Default, PartialEq, Eq)]
struct Listed {
    instances: Vec<(String, String)>,
    series: Vec<(String, String)>,
}

/// The instances (SOPInstanceUID) and series (SeriesInstanceUID) a DICOM
/// JSON answer lists, each with its study, if the answer is believed
/// whole: a list of objects, each object that names an instance or a
/// series naming exactly one valid UID for it and one valid
/// StudyInstanceUID (objects naming neither, a QIDO-RS study result, teach
/// nothing); a UID listed in two studies, or anything else, and nothing of
/// it is kept.
fn listed_in_answer(body: &[u8]) -> Result<Listed, ResolveError> {
    let objects: Vec<ListedObject> = serde_json::from_slice(body)
        .map_err(|_| ResolveError::Unresolvable("answer is not a DICOM JSON list"))?;
    let mut out = Listed::default();
    for o in &objects {
        if o.sop.is_none() && o.series.is_none() {
            continue;
        }
        fn uid(a: &Option<UidAttribute>) -> Result<Option<&str>, ResolveError> {
            match a {
                None => Ok(None),
                Some(a) => a.uid().map(Some).ok_or(ResolveError::Unresolvable(
                    "listed resource without one valid UID",
                )),
            }
        }
        let study =
            o.study
                .as_ref()
                .and_then(UidAttribute::uid)
                .ok_or(ResolveError::Unresolvable(
                    "listed resource without one valid study UID",
                ))?;
        if let Some(sop) = uid(&o.sop)? {
            out.instances.push((sop.to_owned(), study.to_owned()));
        }
        if let Some(series) = uid(&o.series)? {
            out.series.push((series.to_owned(), study.to_owned()));
        }
    }
    for pairs in [&mut out.instances, &mut out.series] {
        pairs.sort();
        pairs.dedup();
        if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(ResolveError::Unresolvable("resource listed in two studies"));
        }
    }
    Ok(out)
}

/// Keeps what an answer said: each UID with its study; a UID that two
/// answers place in two studies (reused by a faulty modality) is
/// forgotten, so that its lookup sees both and refuses.
fn remember(cache: &TtlCache<String, Arc<str>>, pairs: Vec<(String, String)>) {
    let mut study: Option<Arc<str>> = None;
    for (uid, s) in pairs {
        // One allocation per study, not per UID.
        let study = match &study {
            Some(known) if **known == *s => known.clone(),
            _ => study.insert(Arc::from(s)).clone(),
        };
        match cache.get(&uid) {
            Some(before) if before != study => cache.remove(&uid),
            _ => cache.insert(uid, study),
        }
    }
}

fn unreachable(e: reqwest::Error) -> ResolveError {
    ResolveError::Unreachable(e.to_string())
}

/// Digits and dots, at most 64 characters, no empty component.
fn is_uid(s: &str) -> bool {
    espace_ps_access::viewer::is_well_formed(espace_ps_access::viewer::IdKind::DicomUid, s)
}

/// The first value of a tag in a DICOM JSON object.
fn first_string<'a>(v: &'a Value, tag: &str) -> Option<&'a str> {
    v.get(tag)?.get("Value")?.get(0)?.as_str()
}

/// The SOPInstanceUIDs a QIDO-RS answer for the instances of `series`
/// lists, if it is believed whole: every result of that series, in `study`,
/// with a valid SOPInstanceUID.
fn instances_in_answer(
    found: &Value,
    series: &str,
    study: &str,
) -> Result<Vec<String>, ResolveError> {
    let results = found
        .as_array()
        .ok_or(ResolveError::Unresolvable("QIDO answer is not a list"))?;
    results
        .iter()
        .map(|r| {
            if first_string(r, SERIES_UID.1) != Some(series) {
                return Err(ResolveError::Unresolvable("QIDO answer for another series"));
            }
            if first_string(r, STUDY_UID.1) != Some(study) {
                return Err(ResolveError::Unresolvable(
                    "instance in another study than its series",
                ));
            }
            first_string(r, SOP_INSTANCE_UID.1)
                .filter(|s| is_uid(s))
                .map(str::to_owned)
                .ok_or(ResolveError::Unresolvable(
                    "QIDO answer without an instance",
                ))
        })
        .collect()
}

/// The one study a QIDO-RS answer names for `uid`: every result must carry
/// `tag` = `uid` and the same valid StudyInstanceUID.
fn study_in_answer(found: &Value, tag: &str, uid: &str) -> Result<String, ResolveError> {
    let results = found
        .as_array()
        .ok_or(ResolveError::Unresolvable("QIDO answer is not a list"))?;
    let mut study: Option<&str> = None;
    for r in results {
        if first_string(r, tag) != Some(uid) {
            return Err(ResolveError::Unresolvable("QIDO answer for another UID"));
        }
        let s = first_string(r, STUDY_UID.1)
            .filter(|s| is_uid(s))
            .ok_or(ResolveError::Unresolvable("QIDO answer without a study"))?;
        if study.is_some_and(|before| before != s) {
            return Err(ResolveError::Unresolvable("UID in two studies"));
        }
        study = Some(s);
    }
    study.map(str::to_owned).ok_or(ResolveError::NotFound)
}

#[async_trait]
impl StudyResolver for DicomWebResolver {
    async fn study_of_series(&self, series_uid: &str) -> Result<String, ResolveError> {
        if let Some(study) = self.series.get(series_uid) {
            return Ok(study.to_string());
        }
        self.study_of("series", SERIES_UID, series_uid).await
    }

    async fn study_of_instance(&self, sop_instance_uid: &str) -> Result<String, ResolveError> {
        if let Some(study) = self.instances.get(sop_instance_uid) {
            return Ok(study.to_string());
        }
        let (study, series) = self
            .lookup("instances", SOP_INSTANCE_UID, sop_instance_uid)
            .await?;
        // Its siblings are likely next: ask for them all at once.
        if let Some(series) = series {
            self.learn_series_instances(&series, &study);
        }
        Ok(study)
    }

    fn learns_from_answers(&self) -> bool {
        true
    }

    fn learn_from_answer(&self, body: &[u8]) {
        match listed_in_answer(body) {
            Ok(listed) => {
                remember(&self.instances, listed.instances);
                remember(&self.series, listed.series);
            }
            Err(e) => tracing::info!(error = %e, "archive answer not learnt from"),
        }
    }

    async fn viewer_url(&self, study_uid: &str) -> Result<String, ResolveError> {
        // The archive must have the study (else the viewer opens empty).
        let found = self.study_of("studies", STUDY_UID, study_uid).await?;
        Ok(self
            .study_page
            .replace(STUDY_PLACEHOLDER, &urlencoding::encode(&found)))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn series(series: &str, study: &str) -> Value {
        json!({
            "0020000E": {"vr": "UI", "Value": [series]},
            "0020000D": {"vr": "UI", "Value": [study]},
        })
    }

    #[test]
    fn the_study_is_read_from_the_archive_answer() {
        let a = json!([series("1.2.3", "9.8.7")]);
        assert_eq!(study_in_answer(&a, SERIES_UID.1, "1.2.3").unwrap(), "9.8.7");
        // The same series twice (an archive with two copies): one study.
        let a = json!([series("1.2.3", "9.8.7"), series("1.2.3", "9.8.7")]);
        assert_eq!(study_in_answer(&a, SERIES_UID.1, "1.2.3").unwrap(), "9.8.7");
    }

    #[test]
    fn an_empty_answer_is_not_found() {
        assert!(matches!(
            study_in_answer(&json!([]), SERIES_UID.1, "1.2.3"),
            Err(ResolveError::NotFound)
        ));
    }

    #[test]
    fn answers_that_are_not_a_lookup_are_not_believed() {
        // An archive that ignored the filter and listed another series.
        let other = json!([series("1.2.4", "9.8.7")]);
        // A UID in two studies.
        let two = json!([series("1.2.3", "9.8.7"), series("1.2.3", "9.8.6")]);
        // No study, a study that is not a UID, not a list.
        let none = json!([{"0020000E": {"vr": "UI", "Value": ["1.2.3"]}}]);
        let bad = json!([series("1.2.3", "9.8.*")]);
        let object = json!({"0020000E": "1.2.3"});
        for a in [other, two, none, bad, object] {
            assert!(
                matches!(
                    study_in_answer(&a, SERIES_UID.1, "1.2.3"),
                    Err(ResolveError::Unresolvable(_))
                ),
                "{a}"
            );
        }
    }

    fn instance(sop: &str, series: &str, study: &str) -> Value {
        json!({
            "00080018": {"vr": "UI", "Value": [sop]},
            "0020000E": {"vr": "UI", "Value": [series]},
            "0020000D": {"vr": "UI", "Value": [study]},
        })
    }

    #[test]
    fn a_series_answer_lists_its_instances() {
        let a = json!([instance("1.1", "1.2", "9.8"), instance("1.3", "1.2", "9.8")]);
        assert_eq!(
            instances_in_answer(&a, "1.2", "9.8").unwrap(),
            ["1.1", "1.3"]
        );
        assert!(instances_in_answer(&json!([]), "1.2", "9.8")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_series_answer_is_believed_only_whole() {
        let good = instance("1.1", "1.2", "9.8");
        // An archive that ignored the filter (another series listed), an
        // instance in another study than the series', a bad or missing
        // instance UID, not a list: nothing of the answer is kept.
        for bad in [
            instance("1.3", "1.4", "9.8"),
            instance("1.3", "1.2", "9.7"),
            instance("1.*", "1.2", "9.8"),
            json!({"0020000E": {"vr": "UI", "Value": ["1.2"]}, "0020000D": {"vr": "UI", "Value": ["9.8"]}}),
        ] {
            let a = json!([good.clone(), bad]);
            assert!(
                matches!(
                    instances_in_answer(&a, "1.2", "9.8"),
                    Err(ResolveError::Unresolvable(_))
                ),
                "{a}"
            );
        }
        assert!(instances_in_answer(&json!({"a": 1}), "1.2", "9.8").is_err());
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn an_answer_names_the_study_of_each_instance_and_series() {
        // Metadata objects carry many attributes; a series result names a
        // series only; a study result teaches nothing and is no error.
        let mut first = instance("1.1", "1.2", "9.8");
        first["00100010"] = json!({"vr": "PN", "Value": [{"Alphabetic": "X"}]});
        first["7FE00010"] = json!({"vr": "OW", "BulkDataURI": "http://a/b"});
        let study = json!({"0020000D": {"vr": "UI", "Value": ["9.6"]}});
        let a = json!([
            first,
            instance("1.3", "1.4", "9.7"),
            series("1.5", "9.8"),
            study
        ]);
        let body = serde_json::to_vec(&a).unwrap();
        assert_eq!(
            listed_in_answer(&body).unwrap(),
            Listed {
                instances: pairs(&[("1.1", "9.8"), ("1.3", "9.7")]),
                series: pairs(&[("1.2", "9.8"), ("1.4", "9.7"), ("1.5", "9.8")]),
            }
        );
    }

    #[test]
    fn an_answer_is_learnt_from_only_whole() {
        let good = instance("1.1", "1.2", "9.8");
        let mut no_study = instance("1.3", "1.2", "9.8");
        no_study.as_object_mut().unwrap().remove("0020000D");
        let mut two_studies = instance("1.3", "1.2", "9.8");
        two_studies["0020000D"]["Value"] = json!(["9.8", "9.7"]);
        let mut bad_series = instance("1.3", "1.2", "9.8");
        bad_series["0020000E"]["Value"] = json!([]);
        for bad in [
            // The same instance, or the same series, in two studies.
            json!([good.clone(), instance("1.1", "1.4", "9.7")]),
            json!([good.clone(), series("1.2", "9.7")]),
            json!([good.clone(), instance("1.*", "1.2", "9.8")]),
            json!([good.clone(), instance("1.3", "1.2", "9.8*")]),
            json!([good.clone(), series("1.2.*", "9.8")]),
            json!([good.clone(), no_study]),
            json!([good.clone(), two_studies]),
            json!([good.clone(), bad_series]),
            json!({"00080018": {"vr": "UI", "Value": ["1.1"]}}),
        ] {
            let body = serde_json::to_vec(&bad).unwrap();
            assert!(listed_in_answer(&body).is_err(), "{bad}");
        }
        assert!(listed_in_answer(b"[{\"00080018\"").is_err());
    }

    #[tokio::test]
    async fn what_an_answer_teaches_spares_the_lookup() {
        // An archive that answers nothing: a lookup would fail.
        let r = DicomWebResolver::new("http://127.0.0.1:9", "/dicom-web", "/v?s={study}").unwrap();
        let a = json!([instance("1.1", "1.2", "9.8"), instance("1.3", "1.2", "9.8")]);
        r.learn_from_answer(&serde_json::to_vec(&a).unwrap());
        assert_eq!(r.study_of_instance("1.3").await.unwrap(), "9.8");
        assert_eq!(r.study_of_series("1.2").await.unwrap(), "9.8");
        assert!(r.study_of_series("1.6").await.is_err());
        assert!(matches!(
            r.study_of_instance("1.4").await,
            Err(ResolveError::Unreachable(_))
        ));
        // Another answer placing 1.3 in another study: forgotten, looked
        // up again (where the archive's lookup sees both).
        let b = json!([instance("1.3", "1.5", "9.7"), series("1.2", "9.7")]);
        r.learn_from_answer(&serde_json::to_vec(&b).unwrap());
        assert!(r.study_of_instance("1.3").await.is_err());
        assert!(r.study_of_series("1.2").await.is_err());
        assert_eq!(r.study_of_instance("1.1").await.unwrap(), "9.8");
        // An answer not believed teaches nothing, even its good part.
        let c = json!([instance("2.1", "2.2", "9.8"), instance("2.1", "2.2", "9.7")]);
        r.learn_from_answer(&serde_json::to_vec(&c).unwrap());
        assert!(r.study_of_instance("2.1").await.is_err());
        assert!(r.study_of_series("2.2").await.is_err());
    }

    #[test]
    fn only_uids_are_looked_up() {
        for uid in ["1.2.3", "1", &"1".repeat(64)] {
            assert!(is_uid(uid), "{uid}");
        }
        for uid in [
            "",
            "1.2.*",
            "1.2.3,1.2.4",
            "1.2.3\\1.2.4",
            "1..2",
            ".1",
            "1.2?",
            &"1".repeat(65),
        ] {
            assert!(!is_uid(uid), "{uid}");
        }
    }
}
