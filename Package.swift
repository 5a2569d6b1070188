// swift-tools-version:5.9
import PackageDescription

// vgg-dp: data-parallel VGG training and benchmarking on OpenMPI + OpenBLAS.
//
//   CMPI, COpenBLAS   system libraries (pkg-config: ompi-c, openblas)
//   Vocabulary        value types every module shares (Foundation only)
//   Reports           run reports and all computed from them: text, CSV,
//                     studies, comparison, scaling model (Foundation only)
//   VGGEngine         the network: layers (BLAS lives here), arenas, data, init
//   Comm              the only module that talks to MPI
//   Trainer           data-parallel training loop, buckets, timing, the
//                     report built from the ranks' timings
//   vgg-dp            thin command-line front end
let package = Package(
    name: "vgg-dp",
    products: [
        .executable(name: "vgg-dp", targets: ["vgg-dp"]),
        .library(name: "VGGEngine", targets: ["VGGEngine"]),
        .library(name: "Comm", targets: ["Comm"]),
        .library(name: "Trainer", targets: ["Trainer"]),
        .library(name: "Reports", targets: ["Reports"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .target(name: "Vocabulary"),
        .target(name: "VGGEngine", dependencies: ["Vocabulary", "COpenBLAS"],
                swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]),
        .target(name: "Comm", dependencies: ["Vocabulary", "CMPI"]),
        .target(name: "Reports", dependencies: ["Vocabulary"]),
        .target(name: "Trainer", dependencies: ["Vocabulary", "Reports", "VGGEngine", "Comm"]),
        .executableTarget(name: "vgg-dp", dependencies: [
            "Trainer", "Reports", "VGGEngine", "Comm", "Vocabulary",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Runs the built vgg-dp under mpirun for the tests that need real ranks.
        // Also holds the run-report fixtures both test targets build on.
        .target(name: "TestSupport", dependencies: ["Reports", "Vocabulary"], path: "Tests/TestSupport"),
        .testTarget(name: "VGGEngineTests", dependencies: ["VGGEngine", "Vocabulary"]),
        .testTarget(name: "CommTests", dependencies: ["Comm", "Reports", "Vocabulary", "TestSupport", "vgg-dp"]),
        .testTarget(name: "TrainerTests", dependencies: ["Trainer", "Reports", "VGGEngine", "Comm", "Vocabulary", "TestSupport", "vgg-dp"]),
        .testTarget(name: "ReportsTests", dependencies: ["Reports", "Vocabulary", "TestSupport"], exclude: ["Fixtures"]),
    ]
)
