// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Warren",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "WarrenAMQP", targets: ["WarrenAMQP"]),
        .library(name: "WarrenHealth", targets: ["WarrenHealth"]),
        .library(name: "WarrenHTTP", targets: ["WarrenHTTP"]),
        .library(name: "Warren", targets: ["Warren"]),
        .library(name: "WarrenRedis", targets: ["WarrenRedis"]),
        .library(name: "WarrenPostgres", targets: ["WarrenPostgres"]),
        .library(name: "WarrenTesting", targets: ["WarrenTesting"]),
        .executable(name: "event-worker", targets: ["EventWorker"]),
    ],
    traits: [
        // event-worker's OTLP/HTTP span exporter (swift-otel, with async-http-client and swift-protobuf:
        // the heaviest part of the build). `swift build --disable-default-traits` leaves it out; the
        // library itself records with swift-distributed-tracing only, whatever the trait.
        .trait(name: "OTLP", description: "event-worker exports spans over OTLP/HTTP when OTEL_* variables ask for it"),
        .default(enabledTraits: ["OTLP"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
        // Tests only (DeployTests reads the deploy manifests).
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]
        ),
        // No pkgConfig: hiredis.pc adds -D_FILE_OFFSET_BITS=64, which SwiftPM refuses with a warning;
        // the shim includes <hiredis/hiredis.h> from the standard include path instead.
        .systemLibrary(
            name: "CHiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        // POSIX plumbing shared by the C-client modules, WarrenHealth and WarrenHTTP, with no package
        // dependencies: OS threads and their time slice, the monotonic clock, Duration conversions,
        // connection-URL parsing.
        .target(name: "WarrenSystem", dependencies: ["CWarrenSystem"]),
        // The C half of WarrenSystem: system calls glibc does not wrap (sched_setattr).
        .target(name: "CWarrenSystem"),
        // The one-thread, lazily connected client connection of WarrenRedis and WarrenPostgres
        // (on a NIOThreadPool, hence apart from WarrenSystem: WarrenHealth stays free of NIO).
        .target(
            name: "WarrenOwnedConnection",
            dependencies: ["WarrenSystem", .product(name: "NIOPosix", package: "swift-nio")]
        ),
        .target(
            name: "WarrenAMQP",
            dependencies: [
                "CRabbitMQ",
                "WarrenSystem",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "warren-consume-bench",
            dependencies: ["WarrenAMQP"],
            path: "bench/swift-consumer"
        ),
        .target(
            name: "WarrenHTTP",
            dependencies: [
                "WarrenSystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "WarrenHTTPTests",
            dependencies: [
                "WarrenHTTP",
                "WarrenSystem",
                "WarrenTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Each client ships its readiness check (HealthCheck.redis / .postgres), so `Warren` itself
        // links neither hiredis nor libpq: a user's binary carries only the clients it imports.
        .target(name: "WarrenRedis", dependencies: ["CHiredis", "WarrenSystem", "WarrenOwnedConnection", "WarrenHealth"]),
        .target(name: "WarrenPostgres", dependencies: ["CLibPQ", "WarrenSystem", "WarrenOwnedConnection", "WarrenHealth"]),
        .testTarget(name: "WarrenRedisTests", dependencies: ["WarrenRedis", "WarrenTestSupport"]),
        .testTarget(name: "WarrenPostgresTests", dependencies: ["WarrenPostgres", "WarrenTestSupport"]),
        .target(name: "WarrenHealth", dependencies: ["WarrenSystem"]),
        .target(
            name: "Warren",
            dependencies: [
                "WarrenAMQP",
                "WarrenHealth",
                "WarrenSystem",
                "WarrenHTTP",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                // Only the swift-metrics API: the executable picks the backend.
                .product(name: "CoreMetrics", package: "swift-metrics"),
                // Only the swift-distributed-tracing API: the executable picks the tracer.
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        // In-memory runs of a subscription's handler, for users' unit tests (no broker).
        .target(
            name: "WarrenTesting",
            dependencies: ["Warren", "WarrenAMQP", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "WarrenTests",
            dependencies: ["Warren", "WarrenAMQP"]
        ),
        .testTarget(
            name: "EventWorkerTests",
            dependencies: ["EventWorker", "Warren", "WarrenTesting", "WarrenRedis", "WarrenPostgres"]
        ),
        .testTarget(
            name: "WarrenHealthTests",
            dependencies: ["WarrenHealth"]
        ),
        .executableTarget(
            name: "EventWorker",
            dependencies: [
                "Warren",
                "WarrenRedis",
                "WarrenPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "OTel", package: "swift-otel", condition: .when(traits: ["OTLP"])),
            ]
        ),
        // A worker whose handler publishes, traced over OTLP: the tracing test runs it against a real
        // OTLP/HTTP receiver (it needs the exporter, so only with the OTLP trait).
        .executableTarget(
            name: "warren-trace-fixture",
            dependencies: [
                "Warren", "WarrenAMQP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "OTel", package: "swift-otel", condition: .when(traits: ["OTLP"])),
            ],
            path: "Tests/TraceFixture"
        ),
        .target(
            name: "WarrenTestSupport",
            path: "Tests/WarrenTestSupport"
        ),
        .testTarget(
            name: "WarrenAMQPTests",
            dependencies: ["WarrenAMQP"]
        ),
        .testTarget(
            name: "WarrenIntegrationTests",
            dependencies: [
                "Warren", "WarrenAMQP", "WarrenHealth", "WarrenHTTP", "WarrenRedis", "WarrenPostgres", "WarrenTestSupport",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .testTarget(
            name: "DeployTests",
            dependencies: [
                "Warren", "WarrenHealth", "WarrenHTTP", "WarrenTestSupport",
                .product(name: "Yams", package: "Yams"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
