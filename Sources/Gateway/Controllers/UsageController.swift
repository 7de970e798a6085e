import HTTPTypes
import Hummingbird
import NIOCore
import Shared

/// `GET /usage`: what the asking organization sent and what became of it, for today and each of the 30 days before
/// (UTC; `UsageReport`), its services against its quota, its rate limit with what is left of it now, and whether its
/// events overflow (`OverflowTenant`).
/// Authenticated as the ingestion routes are (the organization is the key's, or `x-organization-id`'s).
struct UsageController {
    let authenticator: Authenticator
    /// Where usage is read; `nil` (in-process route tests) answers 503.
    let redis: RedisClient?
    let keys: RedisKeys
    let rateLimits: OrganizationRateLimits
    /// The service limit of organizations other than `default` without an override (`OPERYN_DEFAULT_SERVICE_LIMIT`,
    /// as the workers read it).
    let defaultServiceLimit: Int
    let retryAfterSeconds: Int

    var endpoints: RouteCollection<GatewayRequestContext> {
        let routes = RouteCollection(context: GatewayRequestContext.self)
        routes.get("usage") { request, context in try await usage(request, context: context) }
        return routes
    }

    private func usage(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let organization: String
        switch authenticator.organization(of: request.head, peer: context.peer, on: context.eventLoop) {
        case .now(let result): organization = try result.get()
        case .later(let future):
            do {
                organization = try await future.get()
            } catch let error as GatewayError {
                throw error
            } catch {
                throw GatewayError.unavailable("Event queue is unavailable; retry later", retryAfter: retryAfterSeconds, cause: "\(error)")
            }
        }
        guard let redis else { throw GatewayError.unavailable("Usage is not available here", retryAfter: retryAfterSeconds) }
        do {
            let report = try await UsageReport.read(redis: redis, keys: keys, organization: organization, today: .now)
            let services = try await redis.send(SMEMBERS(keys.services(org: organization))).sorted()
            let serviceLimit = try await ServiceLimit.read(organization, redis: redis, keys: keys, deploymentDefault: defaultServiceLimit).limit
            let limit = try await rateLimits.limit(of: organization, on: context.eventLoop).get()
            var rate: JSONValue = .null
            if !limit.isNone {
                var reading = RedisPipeline()
                let clock = reading.add(RawCommand("TIME"))
                let budgets = reading.add(HMGET(keys.rateState(org: organization), fields: ["events", "bytes"]))
                let results = try await redis.pipeline(reading)
                let parts = try results.value(clock).array ?? []
                let time = Double(parts.first?.integer ?? 0) * 1_000 + Double(parts.dropFirst().first?.integer ?? 0) / 1_000
                let state = try results.value(budgets).map { $0.flatMap { Double($0) } }
                var remaining: [(key: String, value: JSONValue)] = []
                for (index, (measure, perSecond, burst)) in [
                    ("events", limit.eventsPerSecond, limit.eventsBurst), ("bytes", limit.bytesPerSecond, limit.bytesBurst),
                ]
                .enumerated() where perSecond > 0 {
                    remaining.append((measure, .number(String(GCRA(rate: perSecond, burst: burst).remaining(tat: state[index], now: time)))))
                }
                rate = .object([
                    ("eventsPerSecond", .number(String(limit.eventsPerSecond))), ("eventsBurst", .number(String(limit.eventsBurst))),
                    ("bytesPerSecond", .number(String(limit.bytesPerSecond))), ("bytesBurst", .number(String(limit.bytesBurst))),
                    ("remaining", .object(remaining)),
                ])
            }
            let published = try await redis.send(HGET(keys.storage, field: "retention_days")).flatMap { Int($0) }
            let retention = try await RetentionPolicy.read(redis: redis, keys: keys, organization: organization, defaultDays: published)
            let overflow = try await redis.send(HGET(keys.overflowTenants, field: organization)).flatMap(OverflowTenant.init(value:))
            let body: JSONValue = .object([
                ("org", .string(organization)),
                ("services", .object([("used", .array(services.map { .string($0) })), ("limit", .number(String(serviceLimit)))])),
                ("rateLimit", rate),
                ("retention", retention.json(organization: organization)),
                ("overflow", overflow?.json ?? .null),
                ("days", report.json),
            ])
            var bytes: [UInt8] = []
            body.encode(into: &bytes)
            return Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        } catch let error as RedisError {
            throw GatewayError.unavailable("Event queue is unavailable; retry later", retryAfter: retryAfterSeconds, cause: error.message)
        }
    }

}
