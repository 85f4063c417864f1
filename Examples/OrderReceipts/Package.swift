// swift-tools-version:6.0
import PackageDescription

// A consumer built on Warren exactly as a user's package would be: Warren by path, only its
// library products.
let package = Package(
    name: "OrderReceipts",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Warren", path: "../.."),
    ],
    targets: [
        .target(name: "OrderReceipts", dependencies: [.product(name: "Warren", package: "Warren")]),
        .executableTarget(name: "order-receipts", dependencies: ["OrderReceipts", .product(name: "Warren", package: "Warren")]),
        .testTarget(name: "OrderReceiptsTests",
                    dependencies: ["OrderReceipts", .product(name: "WarrenTesting", package: "Warren")]),
    ],
    swiftLanguageModes: [.v6]
)
