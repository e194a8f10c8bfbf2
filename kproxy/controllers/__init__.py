"""kproxy.controllers: the control loops that keep derived objects current, kube-style.

Each controller is one module (endpointslice, endpoints, namespace, serviceaccount,
resourcequota, node); informer handlers only enqueue keys, workers reconcile a key from the
shared informer caches and write through kproxy.client.ApiClient (base.py, workqueue.py).
manager.run_controllers runs them all; cli.py is `kproxy controllers`.
"""
