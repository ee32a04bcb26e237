// workerpool's process workers must register their functions with workerpool.worker().
import workerpool from 'workerpool';
import * as tasks from './tasks.mjs';

workerpool.worker({ noop: tasks.noop, spin: tasks.spin, sleep: tasks.sleep, alloc: tasks.alloc });
