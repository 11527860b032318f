// AudioWorklet: microphone → mono 16 kHz signed 16-bit PCM in ~100 ms frames.
//
// The page asks for an AudioContext at 16 kHz, in which case this only downmixes
// and converts. Browsers that cannot run the microphone at 16 kHz give us the
// device rate; then each output sample is the mean of the input samples it
// covers (a box filter: enough anti-aliasing for speech recognition).

class PcmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const params = (options && options.processorOptions) || {};
    this.targetRate = params.targetRate || 16000;
    this.frameSamples = params.frameSamples || Math.round(this.targetRate / 10);
    // `sampleRate` is the context's rate (a global of the worklet scope).
    this.step = sampleRate / this.targetRate;
    this.phase = 0;
    this.sum = 0;
    this.count = 0;
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.port.onmessage = (event) => {
      if (event.data === "flush") {
        this.post();
        this.port.postMessage({ flushed: true });
      }
    };
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const length = channels[0].length;
    for (let i = 0; i < length; i++) {
      let mixed = 0;
      for (let c = 0; c < channels.length; c++) mixed += channels[c][i];
      mixed /= channels.length;
      if (this.step === 1) {
        this.push(mixed);
        continue;
      }
      this.sum += mixed;
      this.count += 1;
      this.phase += 1;
      const mean = this.sum / this.count;
      let emitted = false;
      while (this.phase >= this.step) {
        this.push(mean);
        this.phase -= this.step;
        emitted = true;
      }
      if (emitted) {
        this.sum = 0;
        this.count = 0;
      }
    }
    return true;
  }

  push(value) {
    const clamped = Math.max(-1, Math.min(1, value));
    this.frame[this.filled++] = clamped < 0 ? clamped * 0x8000 : clamped * 0x7fff;
    if (this.filled === this.frameSamples) this.post();
  }

  post() {
    if (this.filled === 0) return;
    const out = this.frame.slice(0, this.filled);
    this.port.postMessage(out.buffer, [out.buffer]);
    this.filled = 0;
  }
}

registerProcessor("pcm-capture", PcmCapture);
