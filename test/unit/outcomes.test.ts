// Each outcome wire form comes back, across the boundary, as its own error class with its props.
import { describe, expect, it } from 'vitest';
import { crashed, cancelled, startFailed, timedOut, unsendable } from '../../dist/shared/outcomes.js';
import { fromErrorWire } from '../../dist/master/outcome.js';
import { SerializationError, TaskCancelledError, TaskTimeoutError, WorkerCrashedError } from '../../dist/index.js';

describe('outcome wire forms', () => {
  it('crashed() rebuilds as WorkerCrashedError with exit code, signal and scope', () => {
    const err = fromErrorWire(crashed('boom', 'process', null, 'SIGKILL'));
    expect(err).toBeInstanceOf(WorkerCrashedError);
    expect(err).toMatchObject({ message: 'boom', exitCode: null, signal: 'SIGKILL', scope: 'process' });
    expect(fromErrorWire(crashed('t', 'thread', 3))).toMatchObject({ exitCode: 3, signal: null, scope: 'thread' });
  });

  it('timedOut() rebuilds as TaskTimeoutError with its limit', () => {
    const err = fromErrorWire(timedOut('slow', 250));
    expect(err).toBeInstanceOf(TaskTimeoutError);
    expect(err).toMatchObject({ message: 'slow', timeoutMs: 250 });
  });

  it('cancelled() and unsendable() rebuild as their classes', () => {
    expect(fromErrorWire(cancelled('stop'))).toBeInstanceOf(TaskCancelledError);
    expect(fromErrorWire(unsendable('fn'))).toBeInstanceOf(SerializationError);
  });

  it('startFailed() keeps its cause', () => {
    const err = fromErrorWire(startFailed('no start', { name: 'TypeError', message: 'x is not a function' }));
    expect(err.name).toBe('WorkerStartError');
    expect((err as { cause?: Error }).cause?.name).toBe('TypeError');
  });
});
