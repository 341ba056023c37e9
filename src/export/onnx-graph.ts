/**
 * A small ONNX graph builder over `onnx-proto` (protobufjs messages generated from onnx.proto):
 * nodes with typed attributes, f32/int initializers, named inputs and outputs with symbolic
 * dimensions, and serialization with the weights either inside the protobuf or in external data
 * files (needed past protobuf's 2 GB message limit).
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type TensorProto = onnxProto.onnx.ITensorProto;
type NodeProto = onnxProto.onnx.INodeProto;
type ValueInfoProto = onnxProto.onnx.IValueInfoProto;
const DataType = onnx.TensorProto.DataType;
const AttributeType = onnx.AttributeProto.AttributeType;

export type ElemType = 'float32' | 'int64' | 'int32';
const ELEM: Record<ElemType, number> = { float32: DataType.FLOAT, int64: DataType.INT64, int32: DataType.INT32 };

/** A dimension: a fixed size or a symbolic name (dim_param). */
export type Dim = number | string;

export type AttributeValue = number | number[] | string | { float: number };

export interface ExternalDataOptions {
  /** File name next to model.onnx, e.g. 'model.onnx_data'; further chunks get the suffix _1, _2, … */
  fileName: string;
  /** Start a new file once one would grow past this many bytes (a tensor is never split). */
  chunkBytes: number;
}

export interface SerializedModel {
  /** The protobuf (with the weights inside, unless external data was requested). */
  model: Uint8Array;
  /** External data files by name, in the order their tensors reference them. */
  externalData: Map<string, Uint8Array[]>;
}

/** Offsets of tensors in external data files are aligned to this many bytes (ONNX's convention). */
const EXTERNAL_ALIGN = 4096;

interface Initializer {
  name: string;
  dims: number[];
  type: ElemType;
  bytes: Uint8Array;
}

export class OnnxGraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly initializers: Initializer[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly names = new Set<string>();
  /** Names handed out by fresh() and not yet given to an input or initializer. */
  private readonly reserved = new Set<string>();
  private counter = 0;

  constructor(readonly graphName: string) {}

  /** A fresh value name with `hint` in it (names only need to be unique within the graph). */
  fresh(hint: string): string {
    let name = `/${hint}_${this.counter++}`;
    while (this.names.has(name)) name = `/${hint}_${this.counter++}`;
    this.names.add(name);
    this.reserved.add(name);
    return name;
  }

  input(name: string, type: ElemType, dims: Dim[]): string {
    this.claim(name);
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  output(name: string, type: ElemType, dims: Dim[]): void {
    this.outputs.push(valueInfo(name, type, dims));
  }

  /** An initializer from f32 values (copied into little-endian bytes). */
  floats(name: string, dims: number[], values: Float32Array): string {
    const n = dims.reduce((a, b) => a * b, 1);
    if (values.length !== n)
      throw new Error(`initializer ${name}: ${values.length} values for shape [${dims.join(', ')}]`);
    this.claim(name);
    this.initializers.push({
      name,
      dims,
      type: 'float32',
      bytes: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
    });
    return name;
  }

  /** A small integer constant (shapes, axes, indices). */
  ints(name: string, dims: number[], values: number[], type: 'int64' | 'int32' = 'int64'): string {
    this.claim(name);
    const bytes =
      type === 'int64'
        ? new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer)
        : new Uint8Array(Int32Array.from(values).buffer);
    this.initializers.push({ name, dims, type, bytes });
    return name;
  }

  /**
   * Add a node; returns its output names (fresh ones unless `outputs` names them; '' leaves an
   * optional output unused).
   */
  node(
    opType: string,
    inputs: string[],
    opts: { outputs?: string[] | number; attrs?: Record<string, AttributeValue>; domain?: string; name?: string } = {},
  ): string[] {
    const outputs = Array.isArray(opts.outputs)
      ? opts.outputs
      : Array.from({ length: opts.outputs ?? 1 }, () => this.fresh(opType));
    const attribute = Object.entries(opts.attrs ?? {}).map(([name, v]) => attributeProto(name, v));
    this.nodes.push({
      opType,
      input: inputs,
      output: outputs,
      attribute,
      domain: opts.domain ?? '',
      name: opts.name ?? this.fresh(`node_${opType}`),
    });
    return outputs;
  }

  /** One-output shorthand for node(). */
  op(opType: string, inputs: string[], attrs?: Record<string, AttributeValue>, domain?: string): string {
    return this.node(opType, inputs, { attrs, domain })[0];
  }

  /** Total bytes of the initializers (decides between inline and external data). */
  weightBytes(): number {
    return this.initializers.reduce((s, t) => s + t.bytes.byteLength, 0);
  }

  /**
   * Serialize as a ModelProto at IR version 8 with the given opsets. With `external`, every
   * initializer of 1 KiB or more goes to the external data files (the small constants stay inline).
   */
  serialize(
    opsets: Record<string, number>,
    meta: { producer: string; docString?: string },
    external?: ExternalDataOptions,
  ): SerializedModel {
    const externalData = new Map<string, Uint8Array[]>();
    let file = '';
    let fileBytes = 0;
    let chunk = 0;
    const initializer: TensorProto[] = this.initializers.map((t) => {
      const base: TensorProto = { name: t.name, dims: t.dims, dataType: ELEM[t.type] };
      if (!external || t.bytes.byteLength < 1024) return { ...base, rawData: t.bytes };
      const padded = Math.ceil(fileBytes / EXTERNAL_ALIGN) * EXTERNAL_ALIGN;
      if (!file || (fileBytes > 0 && padded + t.bytes.byteLength > external.chunkBytes)) {
        file = chunk === 0 ? external.fileName : `${external.fileName}_${chunk}`;
        chunk++;
        externalData.set(file, []);
        fileBytes = 0;
      }
      const parts = externalData.get(file)!;
      const offset = Math.ceil(fileBytes / EXTERNAL_ALIGN) * EXTERNAL_ALIGN;
      if (offset > fileBytes) parts.push(new Uint8Array(offset - fileBytes));
      parts.push(t.bytes);
      fileBytes = offset + t.bytes.byteLength;
      return {
        ...base,
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: 'location', value: file },
          { key: 'offset', value: String(offset) },
          { key: 'length', value: String(t.bytes.byteLength) },
        ],
      };
    });
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: meta.producer,
      docString: meta.docString ?? '',
      opsetImport: Object.entries(opsets).map(([domain, version]) => ({ domain, version })),
      graph: { name: this.graphName, node: this.nodes, initializer, input: this.inputs, output: this.outputs },
    });
    return { model: onnx.ModelProto.encode(model).finish(), externalData };
  }

  private claim(name: string): void {
    if (this.reserved.delete(name)) return;
    if (this.names.has(name)) throw new Error(`ONNX graph: the name ${name} is used twice`);
    this.names.add(name);
  }
}

function valueInfo(name: string, type: ElemType, dims: Dim[]): ValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[type],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attributeProto(name: string, v: AttributeValue): onnxProto.onnx.IAttributeProto {
  if (typeof v === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: AttributeType.INTS, ints: v };
  if (typeof v === 'object') return { name, type: AttributeType.FLOAT, f: v.float };
  if (!Number.isInteger(v)) throw new Error(`attribute ${name}: ${v} is not an integer (wrap floats as { float: x })`);
  return { name, type: AttributeType.INT, i: v };
}
