//! The dev IdP's signing key.
//!
//! DEV-ONLY: this RSA key pair is committed to the repository, so anyone can
//! forge tokens with it. That is acceptable because the dev IdP is a demo
//! tool: the proxy only trusts an issuer backed by this key when its
//! configuration says `dev_idp = true`, and must never do so in production.
//! The key is embedded (generated once with `openssl genrsa -traditional
//! 2048`) because generating a 2048-bit RSA key at start-up in a debug
//! build takes seconds.

/// DEV-ONLY private key (PKCS#1 PEM). Public knowledge: never trust it in production.
pub const DEV_ONLY_RSA_PRIVATE_KEY_PEM: &str = include_str!("dev_key.pem");

/// DEV-ONLY public modulus of [`DEV_ONLY_RSA_PRIVATE_KEY_PEM`], base64url without padding (JWK `n`).
pub const DEV_ONLY_RSA_N: &str = "7qjWVlH8dhS8i1mUAkM_T9mFfsBiqbOE4-0LRTo0T_UAHqcNO_i9pMWYYfbK3xN6ggmDnqMfIhMU-iDx3jeU754kLDXMutaKeHIDbfuZmJXcmZs04ZzR4m_22DkLBLt8GuKhYVaSZoURfSudpIn_jgUCL2wZCDkokCdq82dvXcncLmJcIu6TGorDw9nTXLLog3t2wmk0tr06R-kK6E7FPk7kVYg24p_NNVHsGbeeOHzSRB1T9Zw_-Tpg5lBmvUe_6yO_nHofSqvLdtGd--DHZrcL_uXG31qKkD38AqUIN-ciq85Gjz9I5jHL0CeipJY3Nq4lBaDPFEKwUgdslgfZ8w";

/// DEV-ONLY public exponent (65537), base64url (JWK `e`).
pub const DEV_ONLY_RSA_E: &str = "AQAB";

/// DEV-ONLY EC P-256 private key (PKCS#8 PEM) of the Hopital Manager
/// simulator ([`crate::hm_sim`]): it signs demo launch tokens. Public
/// knowledge, like the key above: espace-ps trusts it only in the demo's
/// own configuration (`espace-ps-demo demo`), never by default. Generated
/// once with Python's `cryptography` (`ec.generate_private_key(SECP256R1)`).
pub const DEV_ONLY_HM_EC_PRIVATE_KEY_PEM: &str = include_str!("hm_sim_key.pem");

/// The public half of [`DEV_ONLY_HM_EC_PRIVATE_KEY_PEM`] (SubjectPublicKeyInfo PEM).
pub const DEV_ONLY_HM_EC_PUBLIC_KEY_PEM: &str = include_str!("hm_sim_key.pub.pem");

/// Its JWK `x` coordinate, base64url without padding.
pub const DEV_ONLY_HM_EC_X: &str = "Wwy1jn6cdc3gyLkZEuN4MT-IjyU0iAq-cq8ZIbZLhvU";

/// Its JWK `y` coordinate, base64url without padding.
pub const DEV_ONLY_HM_EC_Y: &str = "57rgIF3XZSBvankbekFvRMDhpjwG7XP2h3R4emgSSII";
