//! The bypass corpus (`tests/bypass-corpus.toml`) as data: crafted viewer
//! requests and what the shipped Orthanc table must make of them. Read by
//! this crate's classification test and by the proxy's gate unit tests,
//! which replay it through the whole decision. Not part of the supported API.

use serde::Deserialize;

/// The corpus file, as shipped with the crate.
pub const BYPASS_CORPUS: &str = include_str!("tests/bypass-corpus.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    case: Vec<CorpusCase>,
}

/// One crafted request and its expected outcome (see the file's header).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusCase {
    pub name: String,
    #[serde(default = "get")]
    pub method: String,
    pub target: String,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// `rejected`, `denied`, or a class code (`D`, `R`, `V`, `Q`, `shell`).
    pub expect: String,
    #[serde(default)]
    pub class: Option<String>,
    #[serde(default)]
    pub level: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    /// `system`, `unscoped`, `body` or `none`.
    #[serde(default)]
    pub resource: Option<String>,
}

fn get() -> String {
    "GET".to_string()
}

/// Every case of the corpus, in file order (panics if the file is invalid,
/// which this crate's own test catches first).
pub fn bypass_corpus() -> Vec<CorpusCase> {
    let corpus: Corpus = toml::from_str(BYPASS_CORPUS).expect("bypass corpus parses");
    corpus.case
}
