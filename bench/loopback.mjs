// Preloaded (`node --import`) into peers that listen on every interface with `listen(port, cb)`
// and have no host option (mcp-hub): binds them to 127.0.0.1 instead. Nothing else changes.
import net from 'node:net';

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function listenOnLoopback(...args) {
  if ((typeof args[0] === 'number' || /^\d+$/.test(String(args[0]))) && (args.length === 1 || typeof args[1] === 'function')) args.splice(1, 0, '127.0.0.1');
  return listen.apply(this, args);
};
