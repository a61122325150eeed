/**
 * deeplab-result: a worker's answer to a frame, for an mqtt-out node: topic
 * deeplab/results/<camera>, the label map as an indexed PNG (payload), the summary JSON (frame
 * id, per-class pixel counts, timings, worker) in the user property `result` and in msg.result.
 * A message from a Catch node (msg.error) becomes an error result for its frame, so every frame
 * is answered, the refused ones included. A rendered picture (seg-render) on the message goes out
 * on the second output, topic deeplab/results/<camera>/picture, for dashboards.
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { ContractError, describeValue, expectLabelMap, isLabelMap } from '../../lib/contract';
import { classColors, classNames, CLASS_PRESETS } from '../../lib/data/palette';
import { encodeLabelPng } from '../../lib/data/label-png';
import { checkTopicPrefix, classCounts, RESULTS_TOPIC, resultTopic, ResultSummary } from '../../lib/transport/envelope';
import { modelNodeOf } from '../_shared/model-node';
import { getProp, Msg, onInput, readConfig, requireConfig, setStatus } from '../_shared/node-kit';
import { pathProp } from '../_shared/props';
import type { WireFrame } from '../frame/wire-frame';

interface ResultProps {
  model?: string;
  property?: string;
  topicPrefix?: string;
  /** a message property holding a rendered picture (seg-render's output) to publish beside the result; blank: none */
  picture?: string;
}

export = function register(RED: NodeAPI): void {
  function DeeplabResult(this: Node, def: NodeDef & ResultProps) {
    RED.nodes.createNode(this, def);
    const node = this;
    const cfg = readConfig(node, () => ({
      property: pathProp(def.property),
      topicPrefix: (def.topicPrefix ?? '').trim() ? checkTopicPrefix((def.topicPrefix ?? '').trim()) : RESULTS_TOPIC,
      model: modelNodeOf(RED, def.model),
      picture: (def.picture ?? '').trim() ? pathProp(def.picture) : undefined,
    }));
    let ok = 0;
    let failed = 0;
    if (cfg) setStatus(node, 'idle', 'ready');

    onInput(node, async (msg: Msg, send) => {
      const o = requireConfig(cfg);
      const frame = (msg.frame && typeof msg.frame === 'object' ? msg.frame : undefined) as WireFrame | undefined;
      const publishedAt = Date.now();
      const base = {
        camera: frame?.camera ?? 'unknown',
        frameId: frame?.frameId ?? null,
        captureTime: frame?.captureTime ?? null,
        worker: frame?.worker ?? 'unknown',
      };
      const error = msg.error as { message?: string; code?: string } | undefined;
      let summary: ResultSummary;
      let png: Buffer;
      if (error && typeof error === 'object') {
        summary = { ok: false, ...base, error: { code: String(error.code ?? 'DEEPLAB_ERROR'), message: String(error.message ?? error) } };
        png = Buffer.alloc(0);
        failed++;
      } else {
        if (!frame) throw new ContractError('msg.frame is missing: results answer frames from a deeplab-frame node (decode)');
        let value = getProp(RED, msg, o.property);
        if (!isLabelMap(value) && isLabelMap(msg.labels)) value = msg.labels;
        if (!isLabelMap(value)) throw new ContractError(`msg.${o.property}: expected a LabelMap (deeplab-upsample with output "labels"), got ${describeValue(value)}`);
        const labels = expectLabelMap(value, `msg.${o.property}`);
        const names = o.model?.classNames.length ? o.model.classNames
          : Array.isArray(msg.classNames) ? (msg.classNames as string[]) : [...CLASS_PRESETS.voc21.names];
        const colors = o.model?.classColors.length ? o.model.classColors : classColors(names.length);
        png = encodeLabelPng(labels, colors);
        const { counts } = classCounts(labels, classNames(names.length, names));
        summary = {
          ok: true, ...base, width: labels.width, height: labels.height, counts,
          timings: {
            receivedAt: frame.receivedAt,
            publishedAt,
            transitMs: base.captureTime === null ? null : frame.receivedAt - base.captureTime,
            processMs: publishedAt - frame.receivedAt,
          },
        };
        ok++;
      }
      const topic = resultTopic(summary.camera === 'unknown' || !/^[^/#+]+$/.test(summary.camera) ? 'unknown' : summary.camera, o.topicPrefix);
      const out: Msg = {
        _msgid: msg._msgid,
        topic,
        payload: png,
        result: summary,
        frame,
        contentType: 'image/png',
        userProperties: { camera: summary.camera, frame: summary.frameId ?? '', ok: String(summary.ok), result: JSON.stringify(summary) },
        qos: 1,
        retain: false,
      } as Msg;
      setStatus(node, failed && error ? 'warn' : 'ok', `${ok} results · ${failed} errors${error ? `: ${summary.error!.code}` : ''}`);
      // The picture goes out on a second output without the acknowledgement key: only the result releases the frame.
      const picture = o.picture && !error ? getProp(RED, msg, o.picture) : undefined;
      const pictureMsg = Buffer.isBuffer(picture)
        ? {
          topic: `${topic}/picture`, payload: picture, qos: 1, retain: false,
          contentType: picture[0] === 0x89 ? 'image/png' : 'image/jpeg',
          userProperties: { camera: summary.camera, frame: summary.frameId ?? '' },
          frame: frame && { ...frame, ack: undefined, picture: true },
        }
        : null;
      send([out, pictureMsg]);
    });
  }
  RED.nodes.registerType('deeplab-result', DeeplabResult);
};
