use std::collections::HashSet;

use dicom_dictionary_std::tags;
use dicom_object::{from_reader, open_file, DefaultDicomObject};

use super::*;

pub(crate) fn spec(modality: &str, uid: &str) -> StudySpec {
    StudySpec {
        study_instance_uid: uid.into(),
        accession_number: "A2026000123".into(),
        modality: modality.into(),
        description: "SCANNER CÉRÉBRAL".into(),
        study_date: "20261103".into(),
        patient_id: "IPP0001234".into(),
        family_name: "LEFÈVRE".into(),
        given_name: "Hélène".into(),
        sex: "F".into(),
        birth_date: "19580214".into(),
    }
}

fn parse(bytes: &[u8]) -> DefaultDicomObject {
    assert_eq!(&bytes[128..132], b"DICM", "Part-10 magic");
    // from_reader expects the stream after the 128-byte preamble.
    from_reader(&bytes[128..]).expect("parses back")
}

fn s(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .unwrap_or_else(|_| panic!("missing {tag}"))
        .to_str()
        .expect("string")
        .trim_end_matches(['\0', ' '])
        .to_string()
}

#[test]
fn implementation_class_uid_is_the_documented_derivation() {
    let d = Sha256::digest(b"espace-ps/dicomgen");
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    assert_eq!(
        IMPLEMENTATION_CLASS_UID,
        format!("2.25.{}", u128::from_be_bytes(b))
    );
    assert!(is_valid_uid(IMPLEMENTATION_CLASS_UID));
}

#[test]
fn uid_validation() {
    assert!(is_valid_uid("1.2.840.10008.1.2.1"));
    assert!(is_valid_uid("2.25.0"));
    assert!(!is_valid_uid(""));
    assert!(!is_valid_uid("1.02.3"));
    assert!(!is_valid_uid("1..2"));
    assert!(!is_valid_uid("1.2."));
    assert!(!is_valid_uid("1.2.a"));
    assert!(!is_valid_uid(&format!("1.{}", "2".repeat(63))));
}

#[test]
fn series_and_image_counts_per_modality() {
    let uid = "1.2.250.1.999.1.20261103.4242";
    for (m, series_range, per_series) in [
        ("CT", 2..=2, 4..=6),
        ("MR", 2..=3, 4..=5),
        ("CR", 1..=2, 1..=1),
        ("DX", 1..=2, 1..=1),
        ("US", 1..=1, 3..=3),
        ("MG", 1..=1, 4..=4),
    ] {
        for k in 0..8 {
            let insts = generate_study(&spec(m, &format!("{uid}{k}"))).unwrap();
            let series: Vec<&str> = insts
                .iter()
                .map(|i| i.series_instance_uid.as_str())
                .collect();
            let distinct: HashSet<&str> = series.iter().copied().collect();
            assert!(
                series_range.contains(&distinct.len()),
                "{m}: {} series",
                distinct.len()
            );
            for se in &distinct {
                let n = series.iter().filter(|x| *x == se).count();
                assert!(per_series.contains(&n), "{m}: {n} images in a series");
            }
        }
    }
}

#[test]
fn attributes_match_the_spec() {
    for m in ["CT", "MR", "CR", "DX", "US", "MG"] {
        let sp = spec(m, "1.2.250.1.999.1.20261103.77");
        let insts = generate_study(&sp).unwrap();
        for (k, inst) in insts.iter().enumerate() {
            let obj = parse(&inst.bytes);
            assert_eq!(
                obj.meta().transfer_syntax().trim_end_matches('\0'),
                "1.2.840.10008.1.2.1"
            );
            assert_eq!(
                obj.meta().implementation_class_uid().trim_end_matches('\0'),
                IMPLEMENTATION_CLASS_UID
            );
            assert_eq!(
                obj.meta()
                    .media_storage_sop_instance_uid()
                    .trim_end_matches('\0'),
                inst.sop_instance_uid
            );
            assert_eq!(s(&obj, tags::SPECIFIC_CHARACTER_SET), "ISO_IR 192");
            assert_eq!(s(&obj, tags::PATIENT_NAME), "LEFÈVRE^Hélène");
            assert_eq!(s(&obj, tags::PATIENT_ID), sp.patient_id);
            assert_eq!(s(&obj, tags::PATIENT_BIRTH_DATE), sp.birth_date);
            assert_eq!(s(&obj, tags::PATIENT_SEX), "F");
            assert_eq!(s(&obj, tags::STUDY_INSTANCE_UID), sp.study_instance_uid);
            assert_eq!(s(&obj, tags::STUDY_DATE), sp.study_date);
            assert_eq!(s(&obj, tags::STUDY_DESCRIPTION), "SCANNER CÉRÉBRAL");
            assert_eq!(s(&obj, tags::ACCESSION_NUMBER), sp.accession_number);
            assert_eq!(s(&obj, tags::MODALITY), m);
            assert_eq!(s(&obj, tags::SERIES_INSTANCE_UID), inst.series_instance_uid);
            assert_eq!(s(&obj, tags::SOP_INSTANCE_UID), inst.sop_instance_uid);
            assert_eq!(s(&obj, tags::SOP_CLASS_UID), sop_class(m).unwrap());
            assert!(!s(&obj, tags::SERIES_DESCRIPTION).is_empty());
            let series_no: u32 = s(&obj, tags::SERIES_NUMBER).parse().unwrap();
            let inst_no: u32 = s(&obj, tags::INSTANCE_NUMBER).parse().unwrap();
            assert!(series_no >= 1 && inst_no >= 1, "instance {k}");
            assert_eq!(s(&obj, tags::PHOTOMETRIC_INTERPRETATION), "MONOCHROME2");
            let rows = obj.element(tags::ROWS).unwrap().to_int::<u16>().unwrap();
            let cols = obj.element(tags::COLUMNS).unwrap().to_int::<u16>().unwrap();
            let bits = obj
                .element(tags::BITS_ALLOCATED)
                .unwrap()
                .to_int::<u16>()
                .unwrap();
            assert_eq!((rows, cols), (128, 128));
            let pixels = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
            assert_eq!(pixels.len(), 128 * 128 * usize::from(bits / 8));
            if m == "CT" || m == "MR" {
                assert_eq!(bits, 16);
                let ipp = obj
                    .element(tags::IMAGE_POSITION_PATIENT)
                    .unwrap()
                    .to_multi_float64()
                    .unwrap();
                assert_eq!(ipp.len(), 3);
                let loc: f64 = s(&obj, tags::SLICE_LOCATION).parse().unwrap();
                assert_eq!(loc, ipp[2]);
            } else {
                assert_eq!(bits, 8);
            }
        }
    }
}

#[test]
fn uids_are_valid_unique_and_derived_from_the_study() {
    let mut seen = HashSet::new();
    for (k, m) in ["CT", "MR", "CR", "DX", "US", "MG"].iter().enumerate() {
        // A 64-character study UID (the maximum) must still work.
        let base = format!("1.2.250.1.999.{k}.");
        let long = format!("{base}{}", "7".repeat(64 - base.len()));
        assert_eq!(long.len(), 64);
        for uid in [format!("1.2.250.1.999.{k}.1"), long] {
            for i in generate_study(&spec(m, &uid)).unwrap() {
                for u in [&i.series_instance_uid, &i.sop_instance_uid] {
                    assert!(is_valid_uid(u), "{u}");
                    assert!(u.starts_with("2.25."));
                }
                assert!(seen.insert(i.sop_instance_uid.clone()), "duplicate SOP UID");
                seen.insert(i.series_instance_uid.clone());
            }
        }
    }
}

#[test]
fn generation_is_deterministic() {
    for m in ["CT", "MR", "CR", "DX", "US", "MG"] {
        let sp = spec(m, "1.2.250.1.999.3.5");
        assert_eq!(generate_study(&sp).unwrap(), generate_study(&sp).unwrap());
    }
    // A different study UID gives different UIDs and pixels.
    let a = generate_study(&spec("CT", "1.2.250.1.999.3.5")).unwrap();
    let b = generate_study(&spec("CT", "1.2.250.1.999.3.6")).unwrap();
    assert_ne!(a[0].sop_instance_uid, b[0].sop_instance_uid);
    assert_ne!(a[0].bytes, b[0].bytes);
}

#[test]
fn files_open_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let insts = generate_study(&spec("MG", "1.2.250.1.999.9")).unwrap();
    for (k, i) in insts.iter().enumerate() {
        let p = dir.path().join(format!("{k}.dcm"));
        std::fs::write(&p, &i.bytes).unwrap();
        let obj = open_file(&p).unwrap();
        assert_eq!(s(&obj, tags::SOP_INSTANCE_UID), i.sop_instance_uid);
    }
    let views: Vec<String> = insts
        .iter()
        .map(|i| {
            let o = parse(&i.bytes);
            format!(
                "{}{}",
                s(&o, tags::IMAGE_LATERALITY),
                s(&o, tags::VIEW_POSITION)
            )
        })
        .collect();
    assert_eq!(views, ["RCC", "LCC", "RMLO", "LMLO"]);
}

#[test]
fn invalid_specs_are_rejected() {
    let ok = spec("CT", "1.2.3");
    let cases: Vec<(StudySpec, &str)> = vec![
        (
            StudySpec {
                study_instance_uid: "1.02.3".into(),
                ..ok.clone()
            },
            "study_instance_uid",
        ),
        (
            StudySpec {
                study_date: "2026-11-03".into(),
                ..ok.clone()
            },
            "study_date",
        ),
        (
            StudySpec {
                birth_date: "19581314".into(),
                ..ok.clone()
            },
            "birth_date",
        ),
        (
            StudySpec {
                sex: "X".into(),
                ..ok.clone()
            },
            "sex",
        ),
        (
            StudySpec {
                patient_id: String::new(),
                ..ok.clone()
            },
            "patient_id",
        ),
        (
            StudySpec {
                accession_number: "A".repeat(17),
                ..ok.clone()
            },
            "accession_number",
        ),
        (
            StudySpec {
                family_name: "A^B".into(),
                ..ok.clone()
            },
            "family_name",
        ),
        (
            StudySpec {
                description: "a\\b".into(),
                ..ok.clone()
            },
            "description",
        ),
    ];
    for (sp, field) in cases {
        match generate_study(&sp) {
            Err(DicomGenError::InvalidSpec { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    assert!(matches!(
        generate_study(&StudySpec {
            modality: "PT".into(),
            ..ok
        }),
        Err(DicomGenError::UnsupportedModality(_))
    ));
}

#[test]
fn spec_json_round_trip() {
    let sp = spec("US", "1.2.3.4");
    let json = serde_json::to_string(&[&sp]).unwrap();
    let back: Vec<StudySpec> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, vec![sp]);
}
