//! Domain types that can only be built valid. Parse at the edge, trust inside.

pub mod ids;
pub mod keys;
pub mod money;
pub mod phone;
pub mod travel;

pub use ids::{AttemptId, DeliveryId, EventId, MerchantId, RefundId, SessionId, WebhookEndpointId};
pub use keys::{ApiKeyKind, Mode, SecretKey};
pub use money::Money;
