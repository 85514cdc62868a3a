//! The gRPC glue: `envoy.service.ratelimit.v3.RateLimitService` as a tonic service, written by
//! hand (what `tonic-build` would generate for one unary method).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use crate::proto::{RateLimitRequest, RateLimitResponse};
use crate::{Failure, Limiter};

/// The path of the one method.
const SHOULD_RATE_LIMIT: &str = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'static>>;

/// The service, for `tonic::transport::Server::add_service`.
#[derive(Clone, Debug)]
pub struct RateLimitServer {
    limiter: Arc<Limiter>,
}

impl RateLimitServer {
    /// Serves `limiter`.
    pub fn new(limiter: Arc<Limiter>) -> Self {
        RateLimitServer { limiter }
    }
}

impl NamedService for RateLimitServer {
    const NAME: &'static str = "envoy.service.ratelimit.v3.RateLimitService";
}

struct ShouldRateLimit(Arc<Limiter>);

impl UnaryService<RateLimitRequest> for ShouldRateLimit {
    type Response = RateLimitResponse;
    type Future = BoxFuture<Response<RateLimitResponse>, Status>;

    fn call(&mut self, request: Request<RateLimitRequest>) -> Self::Future {
        let limiter = self.0.clone();
        let caller = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::parse_grpc_timeout);
        let budget = crate::budget(caller);
        Box::pin(async move {
            match limiter.decide(request.get_ref(), budget).await {
                Ok(r) => Ok(Response::new(r)),
                Err(Failure::Invalid(why)) => Err(Status::invalid_argument(why)),
                Err(Failure::Store(why)) => Err(Status::unavailable(why)),
            }
        })
    }
}

impl<B> tonic::codegen::Service<http::Request<B>> for RateLimitServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != SHOULD_RATE_LIMIT {
            return Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) });
        }
        let method = ShouldRateLimit(self.limiter.clone());
        Box::pin(async move {
            let mut grpc = Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(method, req).await)
        })
    }
}
