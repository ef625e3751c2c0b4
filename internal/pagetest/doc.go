// Package pagetest tests the tracker's live page in a real browser: headless
// Chromium (Debian's chromium, driven by chromedp) loads the page while a
// local deploy runs, and `murder status --json` reads the same deploy. It
// holds tests only.
package pagetest
