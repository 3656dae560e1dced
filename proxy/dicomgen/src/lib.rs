//! Deterministic DICOM studies for espace-ps tests and the demo.
//!
//! [`generate_study`] turns a [`StudySpec`] (the study as the demo records
//! describe it: StudyInstanceUID, accession number, modality, patient) into
//! real DICOM Part-10 files (Explicit VR Little Endian, small MONOCHROME2
//! images with burned-in series/image numbers). The same spec always gives
//! the same UIDs and the same bytes.
//!
//! [`upload`] sends them to Orthanc (`POST /instances`), and [`orthanc`]
//! renders the Orthanc configuration used in tests and runs a throw-away
//! Orthanc server.

#![forbid(unsafe_code)]

mod image;
pub mod orthanc;
pub mod upload;

use dicom_core::value::{PrimitiveValue, C};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::image::{Frame, Scene, SectionContrast};

pub use crate::orthanc::orthanc_ids;
pub use crate::upload::{
    upload_instance, upload_study, UploadError, UploadedInstance, UploadedStudy,
};

/// Implementation Class UID written in the file meta group of every file
/// (`2.25.` + the first 128 bits of SHA-256("espace-ps/dicomgen")).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.32731240231872723490039262825478338282";
/// Implementation Version Name written in the file meta group.
pub const IMPLEMENTATION_VERSION_NAME: &str = "ESPACEPS_DG_1";

/// One study, as the demo records describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudySpec {
    pub study_instance_uid: String,
    pub accession_number: String,
    /// CT, MR, CR, DX, US or MG.
    pub modality: String,
    /// Act label, e.g. "SCANNER CEREBRAL" (becomes StudyDescription).
    pub description: String,
    /// YYYYMMDD
    pub study_date: String,
    pub patient_id: String,
    pub family_name: String,
    pub given_name: String,
    /// F, M or O.
    pub sex: String,
    /// YYYYMMDD
    pub birth_date: String,
}

impl From<&espace_ps_demo_data::StudyRow> for StudySpec {
    /// The study of a demo records row (`espace-ps-demo-data`), the DICOM
    /// way: dates without dashes, sex `F`, `M` or `O`.
    fn from(row: &espace_ps_demo_data::StudyRow) -> StudySpec {
        StudySpec {
            study_instance_uid: row.study_instance_uid.clone(),
            accession_number: row.accession_number.clone().unwrap_or_default(),
            modality: row.modality.clone(),
            description: row.act_label.clone(),
            study_date: row.exam_date.replace('-', ""),
            patient_id: row.patient_id.clone(),
            family_name: row.family_name.clone(),
            given_name: row.given_name.clone(),
            sex: match row.sex.as_str() {
                "F" => "F",
                "M" => "M",
                _ => "O",
            }
            .to_owned(),
            birth_date: row.birth_date.replace('-', ""),
        }
    }
}

/// One generated DICOM instance (a Part-10 file in memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedInstance {
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum DicomGenError {
    #[error("invalid study spec: {field}: {reason}")]
    InvalidSpec { field: &'static str, reason: String },
    #[error("unsupported modality {0:?} (expected CT, MR, CR, DX, US or MG)")]
    UnsupportedModality(String),
    #[error("DICOM encoding failed: {0}")]
    Encode(String),
}

/// Checks that `uid` is a valid DICOM UID: 1 to 64 characters, digits and
/// dots only, non-empty components, no leading zero in a multi-digit
/// component.
pub fn is_valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_digit())
                && !(c.len() > 1 && c.starts_with('0'))
        })
}

/// Derives a `2.25.<decimal>` UID from a study UID and a label, so every
/// series and instance UID is a pure function of the study UID.
pub fn derive_uid(study_instance_uid: &str, label: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"espace-ps/dicomgen/v1\0");
    h.update(study_instance_uid.as_bytes());
    h.update(b"\0");
    h.update(label.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    format!("2.25.{}", u128::from_be_bytes(b))
}

fn seed_of(s: &str) -> u64 {
    let d = Sha256::digest(s.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// Modalities this generator knows, with their SOP class.
fn sop_class(modality: &str) -> Option<&'static str> {
    Some(match modality {
        "CT" => uids::CT_IMAGE_STORAGE,
        "MR" => uids::MR_IMAGE_STORAGE,
        "CR" => uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE,
        "DX" => uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
        "US" => uids::ULTRASOUND_IMAGE_STORAGE,
        "MG" => uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
        _ => return None,
    })
}

/// One image of a planned series.
struct ImagePlan {
    scene: Scene,
    /// Burned-in view tag (top right), also ViewPosition/laterality source.
    view: &'static str,
}

struct SeriesPlan {
    description: &'static str,
    images: Vec<ImagePlan>,
    /// Slice thickness / spacing in mm for CT/MR.
    spacing: f64,
}

fn plan(modality: &str, seed: u64) -> Vec<SeriesPlan> {
    let pick = |i: u32, n: u64| ((seed >> (i * 8)) % n) as usize;
    let section = |contrast, n: usize, view| {
        (0..n)
            .map(|_| ImagePlan {
                scene: Scene::Section { contrast },
                view,
            })
            .collect::<Vec<_>>()
    };
    match modality {
        "CT" => vec![
            SeriesPlan {
                description: "AXIAL 5mm",
                images: section(SectionContrast::Ct, 4 + pick(0, 3), "CT"),
                spacing: 5.0,
            },
            SeriesPlan {
                description: "AXIAL 2.5mm",
                images: section(SectionContrast::Ct, 4 + pick(1, 3), "CT"),
                spacing: 2.5,
            },
        ],
        "MR" => {
            let mut v = vec![
                SeriesPlan {
                    description: "T1 AXIAL",
                    images: section(SectionContrast::T1, 4 + pick(0, 2), "T1"),
                    spacing: 5.0,
                },
                SeriesPlan {
                    description: "T2 AXIAL",
                    images: section(SectionContrast::T2, 4 + pick(1, 2), "T2"),
                    spacing: 5.0,
                },
            ];
            if pick(2, 2) == 1 {
                v.push(SeriesPlan {
                    description: "FLAIR AXIAL",
                    images: section(SectionContrast::Flair, 4, "FL"),
                    spacing: 5.0,
                });
            }
            v
        }
        "CR" | "DX" => {
            let mut v = vec![SeriesPlan {
                description: "FACE",
                images: vec![ImagePlan {
                    scene: Scene::Radiograph { lateral: false },
                    view: "PA",
                }],
                spacing: 0.0,
            }];
            if pick(0, 2) == 1 {
                v.push(SeriesPlan {
                    description: "PROFIL",
                    images: vec![ImagePlan {
                        scene: Scene::Radiograph { lateral: true },
                        view: "LAT",
                    }],
                    spacing: 0.0,
                });
            }
            v
        }
        "US" => vec![SeriesPlan {
            description: "ECHOGRAPHIE",
            images: (0..3)
                .map(|_| ImagePlan {
                    scene: Scene::Ultrasound,
                    view: "US",
                })
                .collect(),
            spacing: 0.0,
        }],
        "MG" => vec![SeriesPlan {
            description: "MAMMOGRAPHIE BILATERALE",
            images: [
                ("RCC", false),
                ("LCC", true),
                ("RMLO", false),
                ("LMLO", true),
            ]
            .into_iter()
            .map(|(view, left)| ImagePlan {
                scene: Scene::Mammogram { left },
                view,
            })
            .collect(),
            spacing: 0.0,
        }],
        _ => Vec::new(),
    }
}

fn check_date(field: &'static str, v: &str) -> Result<(), DicomGenError> {
    let ok = v.len() == 8 && v.bytes().all(|b| b.is_ascii_digit()) && {
        let m: u32 = v[4..6].parse().unwrap_or(0);
        let d: u32 = v[6..8].parse().unwrap_or(0);
        (1..=12).contains(&m) && (1..=31).contains(&d)
    };
    if ok {
        Ok(())
    } else {
        Err(DicomGenError::InvalidSpec {
            field,
            reason: format!("{v:?} is not a YYYYMMDD date"),
        })
    }
}

fn check_text(field: &'static str, v: &str, max_len: usize) -> Result<(), DicomGenError> {
    if v.chars().count() > max_len || v.contains(['\\', '\0', '\r', '\n']) {
        return Err(DicomGenError::InvalidSpec {
            field,
            reason: format!(
                "must be at most {max_len} characters, without backslash or control characters"
            ),
        });
    }
    Ok(())
}

fn validate(spec: &StudySpec) -> Result<(), DicomGenError> {
    if !is_valid_uid(&spec.study_instance_uid) {
        return Err(DicomGenError::InvalidSpec {
            field: "study_instance_uid",
            reason: format!("{:?} is not a valid DICOM UID", spec.study_instance_uid),
        });
    }
    if sop_class(&spec.modality).is_none() {
        return Err(DicomGenError::UnsupportedModality(spec.modality.clone()));
    }
    check_date("study_date", &spec.study_date)?;
    check_date("birth_date", &spec.birth_date)?;
    if !matches!(spec.sex.as_str(), "F" | "M" | "O") {
        return Err(DicomGenError::InvalidSpec {
            field: "sex",
            reason: format!("{:?} is not F, M or O", spec.sex),
        });
    }
    if spec.patient_id.is_empty() {
        return Err(DicomGenError::InvalidSpec {
            field: "patient_id",
            reason: "must not be empty".into(),
        });
    }
    check_text("patient_id", &spec.patient_id, 64)?;
    check_text("accession_number", &spec.accession_number, 16)?;
    check_text("description", &spec.description, 64)?;
    check_text("family_name", &spec.family_name, 64)?;
    check_text("given_name", &spec.given_name, 64)?;
    if spec.family_name.contains('^') || spec.given_name.contains('^') {
        return Err(DicomGenError::InvalidSpec {
            field: "family_name",
            reason: "names must not contain '^'".into(),
        });
    }
    Ok(())
}

fn str_el(tag: Tag, vr: VR, v: impl Into<String>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(v.into()))
}

fn strs_el(tag: Tag, vr: VR, v: &[&str]) -> DataElement<InMemDicomObject> {
    DataElement::new(
        tag,
        vr,
        PrimitiveValue::Strs(v.iter().map(|s| s.to_string()).collect::<C<String>>()),
    )
}

fn us_el(tag: Tag, v: u16) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::US, PrimitiveValue::from(v))
}

/// Formats a decimal string (DS) value compactly ("5", "2.5", "-12.5").
fn ds(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// Generates every instance of a study. Deterministic: the same spec gives
/// the same UIDs and the same bytes.
pub fn generate_study(spec: &StudySpec) -> Result<Vec<GeneratedInstance>, DicomGenError> {
    validate(spec)?;
    let sop_class_uid = sop_class(&spec.modality).expect("validated");
    let modality = spec.modality.as_str();
    let seed = seed_of(&spec.study_instance_uid);
    // Study time between 08:00 and 17:59, from the study UID.
    let study_time = format!(
        "{:02}{:02}{:02}",
        8 + seed % 10,
        (seed >> 8) % 60,
        (seed >> 16) % 60
    );
    let study_id = format!("{}", 1 + (seed >> 24) % 99_999);
    let frame_of_reference = derive_uid(&spec.study_instance_uid, "frame-of-reference");
    let sixteen_bit = matches!(modality, "CT" | "MR");
    let bits_stored = if sixteen_bit { 12u16 } else { 8u16 };

    let mut out = Vec::new();
    for (si, series) in plan(modality, seed).iter().enumerate() {
        let series_number = si as u32 + 1;
        let series_uid = derive_uid(&spec.study_instance_uid, &format!("series/{series_number}"));
        let series_time = {
            let hh: u32 = study_time[0..2].parse().unwrap_or(8);
            let mm: u32 = study_time[2..4].parse().unwrap_or(0);
            let total = hh * 60 + mm + 3 * si as u32;
            format!(
                "{:02}{:02}{}",
                (total / 60) % 24,
                total % 60,
                &study_time[4..6]
            )
        };
        let count = series.images.len() as u32;
        for (ii, img) in series.images.iter().enumerate() {
            let instance_number = ii as u32 + 1;
            let sop_uid = derive_uid(
                &spec.study_instance_uid,
                &format!("series/{series_number}/instance/{instance_number}"),
            );
            let label = format!("S{series_number} I{instance_number}");
            let max = image::white_level(img.scene, bits_stored);
            // VOI window covering stored values 0..=max (rescaled units for CT).
            let (window_center, window_width) = if modality == "CT" {
                (ds(f64::from(max) / 2.0 - 1024.0), ds(f64::from(max)))
            } else {
                (ds(f64::from(max) / 2.0), ds(f64::from(max)))
            };
            let pixels = image::render(&Frame {
                scene: img.scene,
                index: ii as u32,
                count,
                seed,
                max,
                label: &label,
                tag: img.view,
            });

            let name = format!("{}^{}", spec.family_name, spec.given_name);
            let mut els = vec![
                str_el(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"),
                strs_el(
                    tags::IMAGE_TYPE,
                    VR::CS,
                    if sixteen_bit {
                        &["ORIGINAL", "PRIMARY", "AXIAL"]
                    } else {
                        &["ORIGINAL", "PRIMARY"]
                    },
                ),
                str_el(tags::SOP_CLASS_UID, VR::UI, sop_class_uid),
                str_el(tags::SOP_INSTANCE_UID, VR::UI, sop_uid.clone()),
                str_el(tags::STUDY_DATE, VR::DA, spec.study_date.clone()),
                str_el(tags::SERIES_DATE, VR::DA, spec.study_date.clone()),
                str_el(tags::CONTENT_DATE, VR::DA, spec.study_date.clone()),
                str_el(tags::STUDY_TIME, VR::TM, study_time.clone()),
                str_el(tags::SERIES_TIME, VR::TM, series_time.clone()),
                str_el(tags::CONTENT_TIME, VR::TM, series_time.clone()),
                str_el(
                    tags::ACCESSION_NUMBER,
                    VR::SH,
                    spec.accession_number.clone(),
                ),
                str_el(tags::MODALITY, VR::CS, modality),
                str_el(tags::MANUFACTURER, VR::LO, "espace-ps dicomgen"),
                str_el(tags::REFERRING_PHYSICIAN_NAME, VR::PN, ""),
                str_el(tags::STUDY_DESCRIPTION, VR::LO, spec.description.clone()),
                str_el(tags::SERIES_DESCRIPTION, VR::LO, series.description),
                str_el(tags::PATIENT_NAME, VR::PN, name),
                str_el(tags::PATIENT_ID, VR::LO, spec.patient_id.clone()),
                str_el(tags::PATIENT_BIRTH_DATE, VR::DA, spec.birth_date.clone()),
                str_el(tags::PATIENT_SEX, VR::CS, spec.sex.clone()),
                str_el(
                    tags::STUDY_INSTANCE_UID,
                    VR::UI,
                    spec.study_instance_uid.clone(),
                ),
                str_el(tags::SERIES_INSTANCE_UID, VR::UI, series_uid.clone()),
                str_el(tags::STUDY_ID, VR::SH, study_id.clone()),
                str_el(tags::SERIES_NUMBER, VR::IS, series_number.to_string()),
                str_el(tags::INSTANCE_NUMBER, VR::IS, instance_number.to_string()),
                us_el(tags::SAMPLES_PER_PIXEL, 1),
                str_el(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
                us_el(tags::ROWS, image::SIZE as u16),
                us_el(tags::COLUMNS, image::SIZE as u16),
                us_el(tags::BITS_ALLOCATED, if sixteen_bit { 16 } else { 8 }),
                us_el(tags::BITS_STORED, bits_stored),
                us_el(tags::HIGH_BIT, bits_stored - 1),
                us_el(tags::PIXEL_REPRESENTATION, 0),
            ];

            match modality {
                "CT" | "MR" => {
                    let z = -(f64::from(ii as u32) * series.spacing);
                    let z = ds(z);
                    els.extend([
                        str_el(tags::PATIENT_POSITION, VR::CS, "HFS"),
                        str_el(
                            tags::FRAME_OF_REFERENCE_UID,
                            VR::UI,
                            frame_of_reference.clone(),
                        ),
                        str_el(tags::POSITION_REFERENCE_INDICATOR, VR::LO, ""),
                        str_el(tags::SLICE_THICKNESS, VR::DS, ds(series.spacing)),
                        strs_el(tags::IMAGE_POSITION_PATIENT, VR::DS, &["-125", "-125", &z]),
                        strs_el(
                            tags::IMAGE_ORIENTATION_PATIENT,
                            VR::DS,
                            &["1", "0", "0", "0", "1", "0"],
                        ),
                        str_el(tags::SLICE_LOCATION, VR::DS, z.clone()),
                        strs_el(tags::PIXEL_SPACING, VR::DS, &["1.953125", "1.953125"]),
                    ]);
                    if modality == "CT" {
                        els.extend([
                            str_el(tags::KVP, VR::DS, "120"),
                            str_el(tags::RESCALE_INTERCEPT, VR::DS, "-1024"),
                            str_el(tags::RESCALE_SLOPE, VR::DS, "1"),
                            str_el(tags::RESCALE_TYPE, VR::LO, "HU"),
                            str_el(tags::WINDOW_CENTER, VR::DS, window_center.clone()),
                            str_el(tags::WINDOW_WIDTH, VR::DS, window_width.clone()),
                        ]);
                    } else {
                        els.extend([
                            str_el(tags::SCANNING_SEQUENCE, VR::CS, "SE"),
                            str_el(tags::SEQUENCE_VARIANT, VR::CS, "NONE"),
                            str_el(tags::SCAN_OPTIONS, VR::CS, ""),
                            str_el(tags::MR_ACQUISITION_TYPE, VR::CS, "2D"),
                            str_el(tags::MAGNETIC_FIELD_STRENGTH, VR::DS, "1.5"),
                            str_el(tags::ECHO_TIME, VR::DS, "15"),
                            str_el(tags::REPETITION_TIME, VR::DS, "500"),
                            str_el(tags::ECHO_TRAIN_LENGTH, VR::IS, "1"),
                            str_el(tags::WINDOW_CENTER, VR::DS, window_center.clone()),
                            str_el(tags::WINDOW_WIDTH, VR::DS, window_width.clone()),
                        ]);
                    }
                }
                "CR" | "DX" | "MG" => {
                    let (view_position, laterality) = match img.view {
                        "PA" => ("PA", ""),
                        "LAT" => ("LL", ""),
                        v => (
                            if v.ends_with("MLO") { "MLO" } else { "CC" },
                            if v.starts_with('L') { "L" } else { "R" },
                        ),
                    };
                    els.extend([
                        str_el(tags::VIEW_POSITION, VR::CS, view_position),
                        strs_el(tags::PIXEL_SPACING, VR::DS, &["0.5", "0.5"]),
                        str_el(tags::WINDOW_CENTER, VR::DS, window_center.clone()),
                        str_el(tags::WINDOW_WIDTH, VR::DS, window_width.clone()),
                    ]);
                    if modality == "CR" {
                        els.push(str_el(tags::BODY_PART_EXAMINED, VR::CS, "CHEST"));
                    } else {
                        els.extend([
                            str_el(tags::PRESENTATION_INTENT_TYPE, VR::CS, "FOR PRESENTATION"),
                            str_el(tags::PRESENTATION_LUT_SHAPE, VR::CS, "IDENTITY"),
                            str_el(tags::IMAGE_LATERALITY, VR::CS, laterality),
                            str_el(tags::PATIENT_ORIENTATION, VR::CS, ""),
                        ]);
                        if modality == "MG" {
                            els.push(str_el(tags::BODY_PART_EXAMINED, VR::CS, "BREAST"));
                        } else {
                            els.push(str_el(tags::BODY_PART_EXAMINED, VR::CS, "CHEST"));
                        }
                    }
                }
                _ => {
                    // US
                    els.push(str_el(tags::PATIENT_ORIENTATION, VR::CS, ""));
                }
            }

            let pixel_data = if sixteen_bit {
                DataElement::new(
                    tags::PIXEL_DATA,
                    VR::OW,
                    PrimitiveValue::U16(C::from_vec(pixels)),
                )
            } else {
                let bytes: Vec<u8> = pixels.iter().map(|&v| v as u8).collect();
                DataElement::new(
                    tags::PIXEL_DATA,
                    VR::OB,
                    PrimitiveValue::U8(C::from_vec(bytes)),
                )
            };
            els.push(pixel_data);

            let obj = InMemDicomObject::from_element_iter(els);
            let file = obj
                .with_meta(
                    FileMetaTableBuilder::new()
                        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
                        .implementation_version_name(IMPLEMENTATION_VERSION_NAME),
                )
                .map_err(|e| DicomGenError::Encode(e.to_string()))?;
            let mut bytes = Vec::with_capacity(2 * image::SIZE * image::SIZE + 2048);
            file.write_all(&mut bytes)
                .map_err(|e| DicomGenError::Encode(e.to_string()))?;
            out.push(GeneratedInstance {
                series_instance_uid: series_uid.clone(),
                sop_instance_uid: sop_uid,
                bytes,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
