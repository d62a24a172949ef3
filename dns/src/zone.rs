//! The `ZoneHandler` serving one of our zones from the shared answer index.
//!
//! We use hickory's `Catalog` with our own `ZoneHandler` (not a custom
//! `RequestHandler`): the Catalog already does exactly what the MCS authority
//! needs around the lookup (REFUSED outside our zones, FORMERR for zero or
//! several questions, BADVERS, AA flag, SOA in negative answers, NS with SOA
//! answers), so this file only turns an `Answer` into hickory's types.

use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::TSigResponseContext;
use hickory_server::proto::rr::{DNSClass, LowerName, RecordType};
use hickory_server::server::{Request, RequestInfo};
use hickory_server::zone_handler::{
    AuthLookup, AxfrPolicy, LookupControlFlow, LookupError, LookupOptions, LookupRecords,
    ZoneHandler, ZoneTransfer, ZoneType,
};

use crate::answer::{Answer, answer};
use crate::index::Index;

pub(crate) struct Zone {
    origin: LowerName,
    index: Arc<ArcSwap<Index>>,
}

impl Zone {
    pub fn new(origin: LowerName, index: Arc<ArcSwap<Index>>) -> Self {
        Self { origin, index }
    }
}

fn to_lookup(a: Answer, opts: LookupOptions) -> LookupControlFlow<AuthLookup> {
    let result = match a {
        Answer::Records {
            answer,
            additionals,
        } => {
            let extra = (!additionals.is_empty()).then(|| LookupRecords::many(opts, additionals));
            Ok(AuthLookup::answers(LookupRecords::new(opts, answer), extra))
        }
        Answer::NoData => Err(LookupError::NameExists),
        Answer::NxDomain => Err(LookupError::from(ResponseCode::NXDomain)),
        Answer::Refused => Err(LookupError::from(ResponseCode::Refused)),
    };
    LookupControlFlow::Break(result)
}

#[async_trait::async_trait]
impl ZoneHandler for Zone {
    fn zone_type(&self) -> ZoneType {
        ZoneType::Primary
    }

    fn axfr_policy(&self) -> AxfrPolicy {
        AxfrPolicy::Deny
    }

    fn origin(&self) -> &LowerName {
        &self.origin
    }

    async fn lookup(
        &self,
        name: &LowerName,
        rtype: RecordType,
        request_info: Option<&RequestInfo<'_>>,
        opts: LookupOptions,
    ) -> LookupControlFlow<AuthLookup> {
        // The Catalog also calls this itself (SOA for negative answers) without a request.
        let class = request_info.map_or(DNSClass::IN, |i| i.query.query_class());
        // A pointer load: never waits for an index rebuild.
        let index = self.index.load();
        to_lookup(answer(&index, name, rtype, class), opts)
    }

    async fn search(
        &self,
        request: &Request,
        opts: LookupOptions,
    ) -> (LookupControlFlow<AuthLookup>, Option<TSigResponseContext>) {
        let info = match request.request_info() {
            Ok(info) => info,
            Err(e) => return (LookupControlFlow::Break(Err(e)), None),
        };
        let q = info.query;
        let found = self
            .lookup(q.name(), q.query_type(), Some(&info), opts)
            .await;
        (found, None)
    }

    async fn nsec_records(
        &self,
        _name: &LowerName,
        _opts: LookupOptions,
    ) -> LookupControlFlow<AuthLookup> {
        // Unsigned zones: no denial-of-existence records.
        LookupControlFlow::Break(Ok(AuthLookup::default()))
    }

    async fn zone_transfer(
        &self,
        _request: &Request,
        _opts: LookupOptions,
        _now: u64,
    ) -> Option<(
        Result<ZoneTransfer, LookupError>,
        Option<TSigResponseContext>,
    )> {
        // The default answers NOTIMP, which the Catalog turns into an empty NOERROR.
        Some((Err(LookupError::from(ResponseCode::Refused)), None))
    }
}
