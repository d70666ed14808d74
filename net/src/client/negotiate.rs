//! Per-api version negotiation after the `ApiVersions` handshake.

use super::error::ClientError;
use crate::codec::{ApiKey, ApiVersionRange};

/// Per api (indexed by api key), the highest version both sides implement: `min(client max,
/// server max)`, which must not fall below either side's minimum. Apis the server does not list
/// keep the client's oldest version; entries for api keys this client does not know are ignored.
pub(crate) fn negotiate(
    addr: &str,
    server: &[ApiVersionRange],
) -> Result<[u16; ApiKey::ALL.len()], ClientError> {
    let mut versions = ApiKey::ALL.map(|api| api.supported_versions().0);
    for range in server {
        let Some(api) = ApiKey::from_u16(range.api_key) else {
            continue;
        };
        let (client_min, client_max) = api.supported_versions();
        let version = client_max.min(range.max_version);
        if version < client_min.max(range.min_version) {
            return Err(ClientError::UnsupportedServer {
                addr: addr.to_owned(),
                api,
                server_min: range.min_version,
                server_max: range.max_version,
                client_min,
                client_max,
            });
        }
        versions[api as usize] = version;
    }
    Ok(versions)
}
