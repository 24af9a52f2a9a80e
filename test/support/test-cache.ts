// The cache the heavy tests share (package downloads, kernels, checkpoints), so a
// second run is fast. HNFORGE_TEST_CACHE moves it: two suites running at once
// (on the host and in a fresh tree, whose /var/cache looks the same) use two.
export const TEST_CACHE = process.env.HNFORGE_TEST_CACHE ?? '/var/cache/hnforge-test';
