// swift-tools-version:6.0
import PackageDescription

// An HTTP application that is also a worker: Hummingbird serves the app's API and Warren's health
// routes on one port, beside a Warren Worker, in one ServiceGroup. Warren by path, only its library
// products.
let package = Package(
    name: "HealthOnHummingbird",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Warren", path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
    ],
    targets: [
        .target(name: "Audit", dependencies: [
            .product(name: "Warren", package: "Warren"),
            .product(name: "Hummingbird", package: "hummingbird"),
        ]),
        .executableTarget(name: "health-on-hummingbird", dependencies: [
            "Audit",
            .product(name: "Warren", package: "Warren"),
            .product(name: "Hummingbird", package: "hummingbird"),
        ]),
        .testTarget(name: "AuditTests", dependencies: [
            "Audit",
            .product(name: "WarrenTesting", package: "Warren"),
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
