// Test identities shaped like Pro Santé Connect (PSC) userinfo.
//
// RPPS numbers are in the sandbox range 99700…: 10 digits + a Luhn check
// digit over the 11 digits; the national id (SubjectNameID) is "8" + RPPS.
// ADELI holders are "0" + the 9-digit ADELI number. See README.md.

// Keycloak federated ids are "f:<user storage provider id>:<username>"; the
// provider id is the same for every user of the realm.
export const FEDERATION_ID = '3b0c6f4e-2a7d-4d6b-9f0e-5c1a8e9d2b47';

export function subFor(nationalId) {
  return `f:${FEDERATION_ID}:${nationalId}`;
}

// Luhn check over a string of digits (the last digit is the check digit).
export function luhnValid(digits) {
  if (!/^\d+$/.test(digits)) return false;
  let sum = 0;
  for (let i = 0; i < digits.length; i += 1) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

function activity(site) {
  return {
    codeModeExercice: 'L',
    codeSecteurDactivite: 'SA07',
    codeSectionPharmacien: null,
    codeRole: 'FON-01',
    numeroSiretSite: null,
    numeroSirenSite: null,
    numeroFinessSite: site.finess,
    numeroFinessetablissementJuridique: null,
    identifiantTechniqueDeLaStructure: `R10100${site.finess}`,
    raisonSocialeSite: site.name,
    enseigneCommercialeSite: null,
    codePostal: site.postcode,
    codeCommune: null,
    codePays: '99000',
    telephone: null,
    adresseEMail: null,
    codeDepartement: site.postcode.slice(0, 2),
    autoriteDEnregistrement: 'RPPS',
    codeGenreActivite: 'GENR01',
  };
}

// Full PSC claim set for a practitioner.
function practitioner({
  nationalId, rpps, given, family, civilite, profession, savoirFaire,
  authMode, otherIdsKey = 'otherIds', site,
}) {
  return {
    SubjectNameID: nationalId,
    preferred_username: nationalId,
    given_name: given,
    family_name: family,
    SubjectRole: [`${profession}^1.2.250.1.213.1.1.5.5`],
    SubjectOrganization: site.name,
    SubjectOrganizationID: `1${site.finess}`,
    Secteur_Activite: 'SA07^1.2.250.1.71.4.2.9',
    Palier_Authentification: 'APPPRIP',
    authMode,
    [otherIdsKey]: [
      { identifiant: nationalId, origine: rpps ? 'RPPS' : 'ADELI', qualite: 1 },
    ],
    SubjectRefPro: {
      codeCivilite: civilite,
      exercices: [
        {
          codeProfession: profession,
          codeCategorieProfessionnelle: 'C',
          codeCiviliteDexercice: profession === '10' ? 'DR' : civilite,
          nomDexercice: family.toUpperCase(),
          prenomDexercice: given,
          codeTypeSavoirFaire: savoirFaire ? 'S' : null,
          codeSavoirFaire: savoirFaire,
          activities: [activity(site)],
        },
      ],
    },
  };
}

const CABINET = { name: 'CABINET DU DR MARTIN', finess: '', postcode: '75011' };
const CHU = { name: 'CHU DE TEST', finess: '990000012', postcode: '69003' };

// The first account is the default one.
export const ACCOUNTS = [
  {
    nationalId: '899700000013',
    note: 'RPPS 99700000013, médecin généraliste (SM54), authMode CARD, otherIds',
    claims: practitioner({
      nationalId: '899700000013', rpps: true, given: 'Paul', family: 'Martin', civilite: 'M',
      profession: '10', savoirFaire: 'SM54', authMode: 'CARD', site: { ...CABINET, finess: '990000020' },
    }),
  },
  {
    nationalId: '899700000021',
    note: 'RPPS 99700000021, médecin radiologue (SM44), authMode MOBILE (e-CPS app), otherIDs casing',
    claims: practitioner({
      nationalId: '899700000021', rpps: true, given: 'Claire', family: 'Durand', civilite: 'MME',
      profession: '10', savoirFaire: 'SM44', authMode: 'MOBILE', otherIdsKey: 'otherIDs', site: CHU,
    }),
  },
  {
    nationalId: '0123456789',
    note: 'ADELI-only: 0 + ADELI 123456789, infirmière (profession 60), authMode CARD',
    claims: practitioner({
      nationalId: '0123456789', rpps: false, given: 'Sophie', family: 'Bernard', civilite: 'MME',
      profession: '60', savoirFaire: null, authMode: 'CARD', site: CHU,
    }),
  },
  {
    nationalId: '8ABC',
    note: 'malformed SubjectNameID "8ABC" (login must be refused)',
    claims: practitioner({
      nationalId: '8ABC', rpps: true, given: 'Marc', family: 'Invalide', civilite: 'M',
      profession: '10', savoirFaire: 'SM54', authMode: 'CARD', site: CHU,
    }),
  },
  {
    nationalId: '899700000039',
    note: 'RPPS 99700000039, médecin (SM26), authMode CARD, plus unknown extra claims',
    claims: {
      ...practitioner({
        nationalId: '899700000039', rpps: true, given: 'Jean', family: 'Extra', civilite: 'M',
        profession: '10', savoirFaire: 'SM26', authMode: 'CARD', site: CHU,
      }),
      Unknown_Claim: 'surprise',
      x_psc_future: { nested: [1, 2, 3], flag: true },
      // A standard claim as a string, as some Keycloak mappers emit it.
      email_verified: 'true',
    },
  },
  {
    nationalId: '899700000047',
    note: 'RPPS 99700000047, minimal claims: only SubjectNameID, preferred_username, family_name',
    claims: {
      SubjectNameID: '899700000047',
      preferred_username: '899700000047',
      family_name: 'Minimal',
    },
  },
];

// Every claim name the scope_all scope may release. The provider drops
// account claims that are not listed here (add names here, not only in an
// account, for new claims to reach the client).
export const SCOPE_ALL_CLAIMS = [
  'SubjectNameID', 'preferred_username', 'given_name', 'family_name',
  'SubjectRole', 'SubjectOrganization', 'SubjectOrganizationID',
  'Secteur_Activite', 'Palier_Authentification', 'authMode',
  'otherIds', 'otherIDs', 'SubjectRefPro',
  'Unknown_Claim', 'x_psc_future', 'email_verified',
];
