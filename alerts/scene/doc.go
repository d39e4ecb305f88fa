// Package scene judges what a camera sees from the sizes of its compressed
// video frames, without decoding a picture.
//
// An encoder spends bits on what changes between frames. The inter-frame
// (non-key) frames of a still scene carry little more than sensor noise;
// something moving in view makes them larger; a covered lens, a black
// picture or a frozen feed makes them collapse to almost nothing; a camera
// turned away or knocked makes them as large as keyframes for a while. The
// Analyzer keeps a per-camera baseline of the quiet level — a low quantile
// of the mean inter-frame size of recent seconds — and judges each second
// of video against it: an activity score (mean inter-frame size over the
// baseline), and whether the second is active, collapsed, or a burst.
//
// It sits in the alerts branch of the data flow: alerts feeds it the units
// of a camera's detector reader (sizes, keyframe flags, times) and turns
// its seconds into activity, tamper and scene-change conditions.
//
// Concurrency: an Analyzer is used by one goroutine (the camera's detector
// goroutine). It starts no goroutines. Memory is bounded by the baseline
// window (Config.BaselineSeconds values) and a few keyframe sizes.
package scene
