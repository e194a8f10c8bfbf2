"""Protobuf message definitions of the kinds the apiserver serves: field numbers and types as
facts from k8s.io/api and k8s.io/apimachinery (generated.proto, and types.go for which scalars are
Go pointers and which structs are embedded). One declarative table; protobuf.py builds the
descriptors from it at import. scripts/pbschema_entries.py prints the entries of a new kind.

A message is a space-separated list of fields `jsonName=number:type`, where type is
- a scalar: string, bytes, int32, int64, bool;
- a message: `pkg.Name` (pkg: core, apps, rbac, discovery, coordination, meta, runtime, and the
  leaf types below);
prefixed with `[]` for a repeated field, `{}` for a map from string, `+` for a Go struct embedded
in its parent (its fields appear in the parent's JSON, as volumeSource in Volume), and suffixed
with `?` for a Go pointer (a zero value or an empty message that is present is kept in JSON;
other zeros and empty messages are omitted, as omitempty does), or with `!` for a scalar whose
Go field has no omitempty (always in JSON, zero when absent).

The leaf types have a JSON form of their own (protobuf.py converts them): Time and MicroTime
(RFC 3339 strings), IntOrString (int or string), Quantity (string), RawExtension and FieldsV1
(embedded JSON), ExtraValue (a list of strings).
"""
from __future__ import annotations

LEAVES: dict[str, str] = {
    "meta.Time": "seconds=1:int64 nanos=2:int32",
    "meta.MicroTime": "seconds=1:int64 nanos=2:int32",
    "meta.FieldsV1": "Raw=1:bytes",
    "intstr.IntOrString": "type=1:int64 intVal=2:int32 strVal=3:string",
    "resource.Quantity": "string=1:string",
    "runtime.RawExtension": "raw=1:bytes",
    "authorization.ExtraValue": "items=1:[]string",
    "authentication.ExtraValue": "items=1:[]string",
}

MESSAGES: dict[str, str] = {
    "core.Namespace": (
        "metadata=1:meta.ObjectMeta spec=2:core.NamespaceSpec status=3:core.NamespaceStatus"),
    "meta.ObjectMeta": (
        "name=1:string generateName=2:string namespace=3:string selfLink=4:string uid=5:string "
        "resourceVersion=6:string generation=7:int64 creationTimestamp=8:meta.Time "
        "deletionTimestamp=9:meta.Time? deletionGracePeriodSeconds=10:int64? labels=11:{}string "
        "annotations=12:{}string ownerReferences=13:[]meta.OwnerReference finalizers=14:[]string "
        "managedFields=17:[]meta.ManagedFieldsEntry"),
    "meta.OwnerReference": (
        "kind=1:string name=3:string uid=4:string apiVersion=5:string controller=6:bool? "
        "blockOwnerDeletion=7:bool?"),
    "meta.ManagedFieldsEntry": (
        "manager=1:string operation=2:string apiVersion=3:string time=4:meta.Time? "
        "fieldsType=6:string fieldsV1=7:meta.FieldsV1? subresource=8:string"),
    "core.NamespaceSpec": "finalizers=1:[]string",
    "core.NamespaceStatus": "phase=1:string conditions=2:[]core.NamespaceCondition",
    "core.NamespaceCondition": (
        "type=1:string status=2:string lastTransitionTime=4:meta.Time reason=5:string "
        "message=6:string"),
    "core.Service": (
        "metadata=1:meta.ObjectMeta spec=2:core.ServiceSpec status=3:core.ServiceStatus"),
    "core.ServiceSpec": (
        "ports=1:[]core.ServicePort selector=2:{}string clusterIP=3:string type=4:string "
        "externalIPs=5:[]string sessionAffinity=7:string loadBalancerIP=8:string "
        "loadBalancerSourceRanges=9:[]string externalName=10:string externalTrafficPolicy=11:string "
        "healthCheckNodePort=12:int32 publishNotReadyAddresses=13:bool "
        "sessionAffinityConfig=14:core.SessionAffinityConfig? ipFamilyPolicy=17:string? "
        "clusterIPs=18:[]string ipFamilies=19:[]string allocateLoadBalancerNodePorts=20:bool? "
        "loadBalancerClass=21:string? internalTrafficPolicy=22:string? trafficDistribution=23:string?"),
    "core.ServicePort": (
        "name=1:string protocol=2:string port=3:int32 targetPort=4:intstr.IntOrString "
        "nodePort=5:int32 appProtocol=6:string?"),
    "core.SessionAffinityConfig": "clientIP=1:core.ClientIPConfig?",
    "core.ClientIPConfig": "timeoutSeconds=1:int32?",
    "core.ServiceStatus": (
        "loadBalancer=1:core.LoadBalancerStatus conditions=2:[]meta.Condition"),
    "core.LoadBalancerStatus": "ingress=1:[]core.LoadBalancerIngress",
    "core.LoadBalancerIngress": (
        "ip=1:string hostname=2:string ipMode=3:string? ports=4:[]core.PortStatus"),
    "core.PortStatus": "port=1:int32 protocol=2:string error=3:string?",
    "meta.Condition": (
        "type=1:string status=2:string observedGeneration=3:int64 lastTransitionTime=4:meta.Time "
        "reason=5:string message=6:string"),
    "core.Endpoints": "metadata=1:meta.ObjectMeta subsets=2:[]core.EndpointSubset",
    "core.EndpointSubset": (
        "addresses=1:[]core.EndpointAddress notReadyAddresses=2:[]core.EndpointAddress "
        "ports=3:[]core.EndpointPort"),
    "core.EndpointAddress": (
        "ip=1:string targetRef=2:core.ObjectReference? hostname=3:string nodeName=4:string?"),
    "core.ObjectReference": (
        "kind=1:string namespace=2:string name=3:string uid=4:string apiVersion=5:string "
        "resourceVersion=6:string fieldPath=7:string"),
    "core.EndpointPort": (
        "name=1:string port=2:int32 protocol=3:string appProtocol=4:string?"),
    "core.Pod": "metadata=1:meta.ObjectMeta spec=2:core.PodSpec status=3:core.PodStatus",
    "core.PodSpec": (
        "volumes=1:[]core.Volume containers=2:[]core.Container restartPolicy=3:string "
        "terminationGracePeriodSeconds=4:int64? activeDeadlineSeconds=5:int64? dnsPolicy=6:string "
        "nodeSelector=7:{}string serviceAccountName=8:string serviceAccount=9:string "
        "nodeName=10:string hostNetwork=11:bool hostPID=12:bool hostIPC=13:bool "
        "securityContext=14:core.PodSecurityContext? imagePullSecrets=15:[]core.LocalObjectReference "
        "hostname=16:string subdomain=17:string affinity=18:core.Affinity? schedulerName=19:string "
        "initContainers=20:[]core.Container automountServiceAccountToken=21:bool? "
        "tolerations=22:[]core.Toleration hostAliases=23:[]core.HostAlias priorityClassName=24:string "
        "priority=25:int32? dnsConfig=26:core.PodDNSConfig? shareProcessNamespace=27:bool? "
        "readinessGates=28:[]core.PodReadinessGate runtimeClassName=29:string? "
        "enableServiceLinks=30:bool? preemptionPolicy=31:string? overhead=32:{}resource.Quantity "
        "topologySpreadConstraints=33:[]core.TopologySpreadConstraint "
        "ephemeralContainers=34:[]core.EphemeralContainer setHostnameAsFQDN=35:bool? "
        "os=36:core.PodOS? hostUsers=37:bool? schedulingGates=38:[]core.PodSchedulingGate "
        "resourceClaims=39:[]core.PodResourceClaim resources=40:core.ResourceRequirements? "
        "hostnameOverride=41:string? schedulingGroup=43:core.PodSchedulingGroup? "
        "evictionResponders=44:[]core.EvictionResponder"),
    "core.Volume": "name=1:string volumeSource=2:+core.VolumeSource",
    "core.VolumeSource": (
        "hostPath=1:core.HostPathVolumeSource? emptyDir=2:core.EmptyDirVolumeSource? "
        "gcePersistentDisk=3:core.GCEPersistentDiskVolumeSource? "
        "awsElasticBlockStore=4:core.AWSElasticBlockStoreVolumeSource? "
        "gitRepo=5:core.GitRepoVolumeSource? secret=6:core.SecretVolumeSource? "
        "nfs=7:core.NFSVolumeSource? iscsi=8:core.ISCSIVolumeSource? "
        "glusterfs=9:core.GlusterfsVolumeSource? "
        "persistentVolumeClaim=10:core.PersistentVolumeClaimVolumeSource? "
        "rbd=11:core.RBDVolumeSource? flexVolume=12:core.FlexVolumeSource? "
        "cinder=13:core.CinderVolumeSource? cephfs=14:core.CephFSVolumeSource? "
        "flocker=15:core.FlockerVolumeSource? downwardAPI=16:core.DownwardAPIVolumeSource? "
        "fc=17:core.FCVolumeSource? azureFile=18:core.AzureFileVolumeSource? "
        "configMap=19:core.ConfigMapVolumeSource? "
        "vsphereVolume=20:core.VsphereVirtualDiskVolumeSource? quobyte=21:core.QuobyteVolumeSource? "
        "azureDisk=22:core.AzureDiskVolumeSource? "
        "photonPersistentDisk=23:core.PhotonPersistentDiskVolumeSource? "
        "portworxVolume=24:core.PortworxVolumeSource? scaleIO=25:core.ScaleIOVolumeSource? "
        "projected=26:core.ProjectedVolumeSource? storageos=27:core.StorageOSVolumeSource? "
        "csi=28:core.CSIVolumeSource? ephemeral=29:core.EphemeralVolumeSource? "
        "image=30:core.ImageVolumeSource?"),
    "core.HostPathVolumeSource": "path=1:string type=2:string?",
    "core.EmptyDirVolumeSource": (
        "medium=1:string sizeLimit=2:resource.Quantity? mode=3:int32?"),
    "core.GCEPersistentDiskVolumeSource": (
        "pdName=1:string fsType=2:string partition=3:int32 readOnly=4:bool"),
    "core.AWSElasticBlockStoreVolumeSource": (
        "volumeID=1:string fsType=2:string partition=3:int32 readOnly=4:bool"),
    "core.GitRepoVolumeSource": "repository=1:string revision=2:string directory=3:string",
    "core.SecretVolumeSource": (
        "secretName=1:string items=2:[]core.KeyToPath defaultMode=3:int32? optional=4:bool? "
        "defaultUser=5:int64?"),
    "core.KeyToPath": "key=1:string path=2:string mode=3:int32? user=4:int64?",
    "core.NFSVolumeSource": "server=1:string path=2:string readOnly=3:bool",
    "core.ISCSIVolumeSource": (
        "targetPortal=1:string iqn=2:string lun=3:int32 iscsiInterface=4:string fsType=5:string "
        "readOnly=6:bool portals=7:[]string chapAuthDiscovery=8:bool "
        "secretRef=10:core.LocalObjectReference? chapAuthSession=11:bool initiatorName=12:string?"),
    "core.LocalObjectReference": "name=1:string",
    "core.GlusterfsVolumeSource": "endpoints=1:string path=2:string readOnly=3:bool",
    "core.PersistentVolumeClaimVolumeSource": "claimName=1:string readOnly=2:bool",
    "core.RBDVolumeSource": (
        "monitors=1:[]string image=2:string fsType=3:string pool=4:string user=5:string "
        "keyring=6:string secretRef=7:core.LocalObjectReference? readOnly=8:bool"),
    "core.FlexVolumeSource": (
        "driver=1:string fsType=2:string secretRef=3:core.LocalObjectReference? readOnly=4:bool "
        "options=5:{}string"),
    "core.CinderVolumeSource": (
        "volumeID=1:string fsType=2:string readOnly=3:bool secretRef=4:core.LocalObjectReference?"),
    "core.CephFSVolumeSource": (
        "monitors=1:[]string path=2:string user=3:string secretFile=4:string "
        "secretRef=5:core.LocalObjectReference? readOnly=6:bool"),
    "core.FlockerVolumeSource": "datasetName=1:string datasetUUID=2:string",
    "core.DownwardAPIVolumeSource": (
        "items=1:[]core.DownwardAPIVolumeFile defaultMode=2:int32? defaultUser=3:int64?"),
    "core.DownwardAPIVolumeFile": (
        "path=1:string fieldRef=2:core.ObjectFieldSelector? "
        "resourceFieldRef=3:core.ResourceFieldSelector? mode=4:int32? user=5:int64?"),
    "core.ObjectFieldSelector": "apiVersion=1:string fieldPath=2:string",
    "core.ResourceFieldSelector": (
        "containerName=1:string resource=2:string divisor=3:resource.Quantity"),
    "core.FCVolumeSource": (
        "targetWWNs=1:[]string lun=2:int32? fsType=3:string readOnly=4:bool wwids=5:[]string"),
    "core.AzureFileVolumeSource": "secretName=1:string shareName=2:string readOnly=3:bool",
    "core.ConfigMapVolumeSource": (
        "localObjectReference=1:+core.LocalObjectReference items=2:[]core.KeyToPath "
        "defaultMode=3:int32? optional=4:bool? defaultUser=5:int64?"),
    "core.VsphereVirtualDiskVolumeSource": (
        "volumePath=1:string fsType=2:string storagePolicyName=3:string storagePolicyID=4:string"),
    "core.QuobyteVolumeSource": (
        "registry=1:string volume=2:string readOnly=3:bool user=4:string group=5:string "
        "tenant=6:string"),
    "core.AzureDiskVolumeSource": (
        "diskName=1:string diskURI=2:string cachingMode=3:string? fsType=4:string? readOnly=5:bool? "
        "kind=6:string?"),
    "core.PhotonPersistentDiskVolumeSource": "pdID=1:string fsType=2:string",
    "core.ProjectedVolumeSource": (
        "sources=1:[]core.VolumeProjection defaultMode=2:int32? defaultUser=3:int64?"),
    "core.VolumeProjection": (
        "secret=1:core.SecretProjection? downwardAPI=2:core.DownwardAPIProjection? "
        "configMap=3:core.ConfigMapProjection? "
        "serviceAccountToken=4:core.ServiceAccountTokenProjection? "
        "clusterTrustBundle=5:core.ClusterTrustBundleProjection? "
        "podCertificate=6:core.PodCertificateProjection?"),
    "core.SecretProjection": (
        "localObjectReference=1:+core.LocalObjectReference items=2:[]core.KeyToPath optional=4:bool?"),
    "core.DownwardAPIProjection": "items=1:[]core.DownwardAPIVolumeFile",
    "core.ConfigMapProjection": (
        "localObjectReference=1:+core.LocalObjectReference items=2:[]core.KeyToPath optional=4:bool?"),
    "core.ServiceAccountTokenProjection": (
        "audience=1:string expirationSeconds=2:int64? path=3:string user=4:int64?"),
    "core.ClusterTrustBundleProjection": (
        "name=1:string? signerName=2:string? labelSelector=3:meta.LabelSelector? path=4:string "
        "optional=5:bool? user=6:int64?"),
    "meta.LabelSelector": (
        "matchLabels=1:{}string matchExpressions=2:[]meta.LabelSelectorRequirement"),
    "meta.LabelSelectorRequirement": "key=1:string operator=2:string values=3:[]string",
    "core.PodCertificateProjection": (
        "signerName=1:string keyType=2:string maxExpirationSeconds=3:int32? "
        "credentialBundlePath=4:string keyPath=5:string certificateChainPath=6:string "
        "userAnnotations=7:{}string user=8:int64?"),
    "core.PortworxVolumeSource": "volumeID=1:string fsType=2:string readOnly=3:bool",
    "core.ScaleIOVolumeSource": (
        "gateway=1:string system=2:string secretRef=3:core.LocalObjectReference? sslEnabled=4:bool "
        "protectionDomain=5:string storagePool=6:string storageMode=7:string volumeName=8:string "
        "fsType=9:string readOnly=10:bool"),
    "core.StorageOSVolumeSource": (
        "volumeName=1:string volumeNamespace=2:string fsType=3:string readOnly=4:bool "
        "secretRef=5:core.LocalObjectReference?"),
    "core.CSIVolumeSource": (
        "driver=1:string readOnly=2:bool? fsType=3:string? volumeAttributes=4:{}string "
        "nodePublishSecretRef=5:core.LocalObjectReference?"),
    "core.EphemeralVolumeSource": (
        "volumeClaimTemplate=1:core.PersistentVolumeClaimTemplate?"),
    "core.PersistentVolumeClaimTemplate": (
        "metadata=1:meta.ObjectMeta spec=2:core.PersistentVolumeClaimSpec"),
    "core.PersistentVolumeClaimSpec": (
        "accessModes=1:[]string resources=2:core.VolumeResourceRequirements volumeName=3:string "
        "selector=4:meta.LabelSelector? storageClassName=5:string? volumeMode=6:string? "
        "dataSource=7:core.TypedLocalObjectReference? dataSourceRef=8:core.TypedObjectReference? "
        "volumeAttributesClassName=9:string?"),
    "core.VolumeResourceRequirements": (
        "limits=1:{}resource.Quantity requests=2:{}resource.Quantity"),
    "core.TypedLocalObjectReference": "apiGroup=1:string? kind=2:string name=3:string",
    "core.TypedObjectReference": (
        "apiGroup=1:string? kind=2:string name=3:string namespace=4:string?"),
    "core.ImageVolumeSource": "reference=1:string pullPolicy=2:string",
    "core.Container": (
        "name=1:string image=2:string command=3:[]string args=4:[]string workingDir=5:string "
        "ports=6:[]core.ContainerPort env=7:[]core.EnvVar resources=8:core.ResourceRequirements "
        "volumeMounts=9:[]core.VolumeMount livenessProbe=10:core.Probe? readinessProbe=11:core.Probe? "
        "lifecycle=12:core.Lifecycle? terminationMessagePath=13:string imagePullPolicy=14:string "
        "securityContext=15:core.SecurityContext? stdin=16:bool stdinOnce=17:bool tty=18:bool "
        "envFrom=19:[]core.EnvFromSource terminationMessagePolicy=20:string "
        "volumeDevices=21:[]core.VolumeDevice startupProbe=22:core.Probe? "
        "resizePolicy=23:[]core.ContainerResizePolicy restartPolicy=24:string? "
        "restartPolicyRules=25:[]core.ContainerRestartRule"),
    "core.ContainerPort": (
        "name=1:string hostPort=2:int32 containerPort=3:int32 protocol=4:string hostIP=5:string"),
    "core.EnvFromSource": (
        "prefix=1:string configMapRef=2:core.ConfigMapEnvSource? secretRef=3:core.SecretEnvSource?"),
    "core.ConfigMapEnvSource": (
        "localObjectReference=1:+core.LocalObjectReference optional=2:bool?"),
    "core.SecretEnvSource": (
        "localObjectReference=1:+core.LocalObjectReference optional=2:bool?"),
    "core.EnvVar": "name=1:string value=2:string valueFrom=3:core.EnvVarSource?",
    "core.EnvVarSource": (
        "fieldRef=1:core.ObjectFieldSelector? resourceFieldRef=2:core.ResourceFieldSelector? "
        "configMapKeyRef=3:core.ConfigMapKeySelector? secretKeyRef=4:core.SecretKeySelector? "
        "fileKeyRef=5:core.FileKeySelector?"),
    "core.ConfigMapKeySelector": (
        "localObjectReference=1:+core.LocalObjectReference key=2:string optional=3:bool?"),
    "core.SecretKeySelector": (
        "localObjectReference=1:+core.LocalObjectReference key=2:string optional=3:bool?"),
    "core.FileKeySelector": (
        "volumeName=1:string path=2:string key=3:string optional=4:bool?"),
    "core.ResourceRequirements": (
        "limits=1:{}resource.Quantity requests=2:{}resource.Quantity claims=3:[]core.ResourceClaim"),
    "core.ResourceClaim": "name=1:string request=2:string",
    "core.ContainerResizePolicy": "resourceName=1:string restartPolicy=2:string",
    "core.ContainerRestartRule": (
        "action=1:string exitCodes=2:core.ContainerRestartRuleOnExitCodes?"),
    "core.ContainerRestartRuleOnExitCodes": "operator=1:string values=2:[]int32",
    "core.VolumeMount": (
        "name=1:string readOnly=2:bool mountPath=3:string subPath=4:string mountPropagation=5:string? "
        "subPathExpr=6:string recursiveReadOnly=7:string? bindMountOptions=8:[]string"),
    "core.VolumeDevice": "name=1:string devicePath=2:string",
    "core.Probe": (
        "handler=1:+core.ProbeHandler initialDelaySeconds=2:int32 timeoutSeconds=3:int32 "
        "periodSeconds=4:int32 successThreshold=5:int32 failureThreshold=6:int32 "
        "terminationGracePeriodSeconds=7:int64?"),
    "core.ProbeHandler": (
        "exec=1:core.ExecAction? httpGet=2:core.HTTPGetAction? tcpSocket=3:core.TCPSocketAction? "
        "grpc=4:core.GRPCAction?"),
    "core.ExecAction": "command=1:[]string",
    "core.HTTPGetAction": (
        "path=1:string port=2:intstr.IntOrString host=3:string scheme=4:string "
        "httpHeaders=5:[]core.HTTPHeader protocol=6:string?"),
    "core.HTTPHeader": "name=1:string value=2:string",
    "core.TCPSocketAction": "port=1:intstr.IntOrString host=2:string",
    "core.GRPCAction": "port=1:int32 service=2:string? mode=3:string?",
    "core.Lifecycle": (
        "postStart=1:core.LifecycleHandler? preStop=2:core.LifecycleHandler? stopSignal=3:string?"),
    "core.LifecycleHandler": (
        "exec=1:core.ExecAction? httpGet=2:core.HTTPGetAction? tcpSocket=3:core.TCPSocketAction? "
        "sleep=4:core.SleepAction?"),
    "core.SleepAction": "seconds=1:int64",
    "core.SecurityContext": (
        "capabilities=1:core.Capabilities? privileged=2:bool? seLinuxOptions=3:core.SELinuxOptions? "
        "runAsUser=4:int64? runAsNonRoot=5:bool? readOnlyRootFilesystem=6:bool? "
        "allowPrivilegeEscalation=7:bool? runAsGroup=8:int64? procMount=9:string? "
        "windowsOptions=10:core.WindowsSecurityContextOptions? seccompProfile=11:core.SeccompProfile? "
        "appArmorProfile=12:core.AppArmorProfile?"),
    "core.Capabilities": "add=1:[]string drop=2:[]string",
    "core.SELinuxOptions": "user=1:string role=2:string type=3:string level=4:string",
    "core.WindowsSecurityContextOptions": (
        "gmsaCredentialSpecName=1:string? gmsaCredentialSpec=2:string? runAsUserName=3:string? "
        "hostProcess=4:bool?"),
    "core.SeccompProfile": "type=1:string localhostProfile=2:string?",
    "core.AppArmorProfile": "type=1:string localhostProfile=2:string?",
    "core.EphemeralContainer": (
        "ephemeralContainerCommon=1:+core.EphemeralContainerCommon targetContainerName=2:string"),
    "core.EphemeralContainerCommon": (
        "name=1:string image=2:string command=3:[]string args=4:[]string workingDir=5:string "
        "ports=6:[]core.ContainerPort env=7:[]core.EnvVar resources=8:core.ResourceRequirements "
        "volumeMounts=9:[]core.VolumeMount livenessProbe=10:core.Probe? readinessProbe=11:core.Probe? "
        "lifecycle=12:core.Lifecycle? terminationMessagePath=13:string imagePullPolicy=14:string "
        "securityContext=15:core.SecurityContext? stdin=16:bool stdinOnce=17:bool tty=18:bool "
        "envFrom=19:[]core.EnvFromSource terminationMessagePolicy=20:string "
        "volumeDevices=21:[]core.VolumeDevice startupProbe=22:core.Probe? "
        "resizePolicy=23:[]core.ContainerResizePolicy restartPolicy=24:string? "
        "restartPolicyRules=25:[]core.ContainerRestartRule"),
    "core.PodSecurityContext": (
        "seLinuxOptions=1:core.SELinuxOptions? runAsUser=2:int64? runAsNonRoot=3:bool? "
        "supplementalGroups=4:[]int64 fsGroup=5:int64? runAsGroup=6:int64? sysctls=7:[]core.Sysctl "
        "windowsOptions=8:core.WindowsSecurityContextOptions? fsGroupChangePolicy=9:string? "
        "seccompProfile=10:core.SeccompProfile? appArmorProfile=11:core.AppArmorProfile? "
        "supplementalGroupsPolicy=12:string? seLinuxChangePolicy=13:string?"),
    "core.Sysctl": "name=1:string value=2:string",
    "core.Affinity": (
        "nodeAffinity=1:core.NodeAffinity? podAffinity=2:core.PodAffinity? "
        "podAntiAffinity=3:core.PodAntiAffinity?"),
    "core.NodeAffinity": (
        "requiredDuringSchedulingIgnoredDuringExecution=1:core.NodeSelector? "
        "preferredDuringSchedulingIgnoredDuringExecution=2:[]core.PreferredSchedulingTerm"),
    "core.NodeSelector": "nodeSelectorTerms=1:[]core.NodeSelectorTerm",
    "core.NodeSelectorTerm": (
        "matchExpressions=1:[]core.NodeSelectorRequirement "
        "matchFields=2:[]core.NodeSelectorRequirement"),
    "core.NodeSelectorRequirement": "key=1:string operator=2:string values=3:[]string",
    "core.PreferredSchedulingTerm": "weight=1:int32 preference=2:core.NodeSelectorTerm",
    "core.PodAffinity": (
        "requiredDuringSchedulingIgnoredDuringExecution=1:[]core.PodAffinityTerm "
        "preferredDuringSchedulingIgnoredDuringExecution=2:[]core.WeightedPodAffinityTerm"),
    "core.PodAffinityTerm": (
        "labelSelector=1:meta.LabelSelector? namespaces=2:[]string topologyKey=3:string "
        "namespaceSelector=4:meta.LabelSelector? matchLabelKeys=5:[]string "
        "mismatchLabelKeys=6:[]string"),
    "core.WeightedPodAffinityTerm": (
        "weight=1:int32 podAffinityTerm=2:core.PodAffinityTerm"),
    "core.PodAntiAffinity": (
        "requiredDuringSchedulingIgnoredDuringExecution=1:[]core.PodAffinityTerm "
        "preferredDuringSchedulingIgnoredDuringExecution=2:[]core.WeightedPodAffinityTerm"),
    "core.Toleration": (
        "key=1:string operator=2:string value=3:string effect=4:string tolerationSeconds=5:int64?"),
    "core.HostAlias": "ip=1:string hostnames=2:[]string",
    "core.PodDNSConfig": (
        "nameservers=1:[]string searches=2:[]string options=3:[]core.PodDNSConfigOption"),
    "core.PodDNSConfigOption": "name=1:string value=2:string?",
    "core.PodReadinessGate": "conditionType=1:string",
    "core.TopologySpreadConstraint": (
        "maxSkew=1:int32 topologyKey=2:string whenUnsatisfiable=3:string "
        "labelSelector=4:meta.LabelSelector? minDomains=5:int32? nodeAffinityPolicy=6:string? "
        "nodeTaintsPolicy=7:string? matchLabelKeys=8:[]string"),
    "core.PodOS": "name=1:string",
    "core.PodSchedulingGate": "name=1:string",
    "core.PodResourceClaim": (
        "name=1:string resourceClaimName=3:string? resourceClaimTemplateName=4:string?"),
    "core.PodSchedulingGroup": "podGroupName=1:string?",
    "core.EvictionResponder": "name=1:string priority=2:int32?",
    "core.PodStatus": (
        "phase=1:string conditions=2:[]core.PodCondition message=3:string reason=4:string "
        "hostIP=5:string podIP=6:string startTime=7:meta.Time? "
        "containerStatuses=8:[]core.ContainerStatus qosClass=9:string "
        "initContainerStatuses=10:[]core.ContainerStatus nominatedNodeName=11:string "
        "podIPs=12:[]core.PodIP ephemeralContainerStatuses=13:[]core.ContainerStatus resize=14:string "
        "resourceClaimStatuses=15:[]core.PodResourceClaimStatus hostIPs=16:[]core.HostIP "
        "observedGeneration=17:int64 "
        "extendedResourceClaimStatus=18:core.PodExtendedResourceClaimStatus? "
        "allocatedResources=19:{}resource.Quantity resources=20:core.ResourceRequirements? "
        "nodeAllocatableResourceClaimStatuses=21:[]core.NodeAllocatableResourceClaimStatus "
        "volumeHealth=22:[]core.PodVolumeHealth"),
    "core.PodCondition": (
        "type=1:string status=2:string lastProbeTime=3:meta.Time lastTransitionTime=4:meta.Time "
        "reason=5:string message=6:string observedGeneration=7:int64"),
    "core.HostIP": "ip=1:string",
    "core.PodIP": "ip=1:string",
    "core.ContainerStatus": (
        "name=1:string state=2:core.ContainerState lastState=3:core.ContainerState ready=4:bool "
        "restartCount=5:int32 image=6:string imageID=7:string containerID=8:string started=9:bool? "
        "allocatedResources=10:{}resource.Quantity resources=11:core.ResourceRequirements? "
        "volumeMounts=12:[]core.VolumeMountStatus user=13:core.ContainerUser? "
        "allocatedResourcesStatus=14:[]core.ResourceStatus stopSignal=15:string?"),
    "core.ContainerState": (
        "waiting=1:core.ContainerStateWaiting? running=2:core.ContainerStateRunning? "
        "terminated=3:core.ContainerStateTerminated?"),
    "core.ContainerStateWaiting": "reason=1:string message=2:string",
    "core.ContainerStateRunning": "startedAt=1:meta.Time",
    "core.ContainerStateTerminated": (
        "exitCode=1:int32 signal=2:int32 reason=3:string message=4:string startedAt=5:meta.Time "
        "finishedAt=6:meta.Time containerID=7:string"),
    "core.VolumeMountStatus": (
        "name=1:string mountPath=2:string readOnly=3:bool recursiveReadOnly=4:string? "
        "volumeStatus=5:core.VolumeStatus?"),
    "core.VolumeStatus": "image=1:core.ImageVolumeStatus?",
    "core.ImageVolumeStatus": "imageRef=1:string",
    "core.ContainerUser": "linux=1:core.LinuxContainerUser?",
    "core.LinuxContainerUser": "uid=1:int64 gid=2:int64 supplementalGroups=3:[]int64",
    "core.ResourceStatus": "name=1:string resources=2:[]core.ResourceHealth",
    "core.ResourceHealth": "resourceID=1:string health=2:string message=6:string?",
    "core.PodResourceClaimStatus": "name=1:string resourceClaimName=2:string?",
    "core.PodExtendedResourceClaimStatus": (
        "requestMappings=1:[]core.ContainerExtendedResourceRequest resourceClaimName=2:string"),
    "core.ContainerExtendedResourceRequest": (
        "containerName=1:string resourceName=2:string requestName=3:string"),
    "core.NodeAllocatableResourceClaimStatus": (
        "resourceClaimName=1:string containers=2:[]string "
        "mapping=4:[]core.NodeAllocatableMappedResources "
        "overhead=5:[]core.NodeAllocatableOverheadResources"),
    "core.NodeAllocatableMappedResources": "name=1:string quantity=2:resource.Quantity?",
    "core.NodeAllocatableOverheadResources": (
        "name=1:string perPod=2:resource.Quantity? perContainer=3:resource.Quantity?"),
    "core.PodVolumeHealth": (
        "name=1:string healthConditions=2:[]core.VolumeHealthCondition lastTransitionTime=3:meta.Time"),
    "core.VolumeHealthCondition": "status=1:string reason=2:string message=3:string",
    "core.Node": (
        "metadata=1:meta.ObjectMeta spec=2:core.NodeSpec status=3:core.NodeStatus"),
    "core.NodeSpec": (
        "podCIDR=1:string externalID=2:string providerID=3:string unschedulable=4:bool "
        "taints=5:[]core.Taint configSource=6:core.NodeConfigSource? podCIDRs=7:[]string "
        "podPreemptionPolicy=8:core.NodePodPreemptionPolicy?"),
    "core.Taint": "key=1:string value=2:string effect=3:string timeAdded=4:meta.Time?",
    "core.NodeConfigSource": "configMap=2:core.ConfigMapNodeConfigSource?",
    "core.ConfigMapNodeConfigSource": (
        "namespace=1:string name=2:string uid=3:string resourceVersion=4:string "
        "kubeletConfigKey=5:string"),
    "core.NodePodPreemptionPolicy": "disableResizePreemption=1:[]string",
    "core.NodeStatus": (
        "capacity=1:{}resource.Quantity allocatable=2:{}resource.Quantity phase=3:string "
        "conditions=4:[]core.NodeCondition addresses=5:[]core.NodeAddress "
        "daemonEndpoints=6:core.NodeDaemonEndpoints nodeInfo=7:core.NodeSystemInfo "
        "images=8:[]core.ContainerImage volumesInUse=9:[]string "
        "volumesAttached=10:[]core.AttachedVolume config=11:core.NodeConfigStatus? "
        "runtimeHandlers=12:[]core.NodeRuntimeHandler features=13:core.NodeFeatures? "
        "declaredFeatures=14:[]string"),
    "core.NodeCondition": (
        "type=1:string status=2:string lastHeartbeatTime=3:meta.Time lastTransitionTime=4:meta.Time "
        "reason=5:string message=6:string"),
    "core.NodeAddress": "type=1:string address=2:string",
    "core.NodeDaemonEndpoints": "kubeletEndpoint=1:core.DaemonEndpoint",
    "core.DaemonEndpoint": "Port=1:int32",
    "core.NodeSystemInfo": (
        "machineID=1:string systemUUID=2:string bootID=3:string kernelVersion=4:string "
        "osImage=5:string containerRuntimeVersion=6:string kubeletVersion=7:string "
        "kubeProxyVersion=8:string operatingSystem=9:string architecture=10:string "
        "swap=11:core.NodeSwapStatus?"),
    "core.NodeSwapStatus": "capacity=1:int64?",
    "core.ContainerImage": "names=1:[]string sizeBytes=2:int64",
    "core.AttachedVolume": "name=1:string devicePath=2:string",
    "core.NodeConfigStatus": (
        "assigned=1:core.NodeConfigSource? active=2:core.NodeConfigSource? "
        "lastKnownGood=3:core.NodeConfigSource? error=4:string"),
    "core.NodeRuntimeHandler": "name=1:string features=2:core.NodeRuntimeHandlerFeatures?",
    "core.NodeRuntimeHandlerFeatures": (
        "recursiveReadOnlyMounts=1:bool? userNamespaces=2:bool?"),
    "core.NodeFeatures": "supplementalGroupsPolicy=1:bool?",
    "core.ServiceAccount": (
        "metadata=1:meta.ObjectMeta secrets=2:[]core.ObjectReference "
        "imagePullSecrets=3:[]core.LocalObjectReference automountServiceAccountToken=4:bool?"),
    "core.ResourceQuota": (
        "metadata=1:meta.ObjectMeta spec=2:core.ResourceQuotaSpec status=3:core.ResourceQuotaStatus"),
    "core.ResourceQuotaSpec": (
        "hard=1:{}resource.Quantity scopes=2:[]string scopeSelector=3:core.ScopeSelector?"),
    "core.ScopeSelector": "matchExpressions=1:[]core.ScopedResourceSelectorRequirement",
    "core.ScopedResourceSelectorRequirement": (
        "scopeName=1:string operator=2:string values=3:[]string"),
    "core.ResourceQuotaStatus": "hard=1:{}resource.Quantity used=2:{}resource.Quantity",
    "core.Event": (
        "metadata=1:meta.ObjectMeta involvedObject=2:core.ObjectReference reason=3:string "
        "message=4:string source=5:core.EventSource firstTimestamp=6:meta.Time "
        "lastTimestamp=7:meta.Time count=8:int32 type=9:string eventTime=10:meta.MicroTime "
        "series=11:core.EventSeries? action=12:string related=13:core.ObjectReference? "
        "reportingComponent=14:string reportingInstance=15:string"),
    "core.EventSource": "component=1:string host=2:string",
    "core.EventSeries": "count=1:int32 lastObservedTime=2:meta.MicroTime",
    "core.Secret": (
        "metadata=1:meta.ObjectMeta data=2:{}bytes type=3:string stringData=4:{}string "
        "immutable=5:bool?"),
    "core.ConfigMap": (
        "metadata=1:meta.ObjectMeta data=2:{}string binaryData=3:{}bytes immutable=4:bool?"),
    "discovery.EndpointSlice": (
        "metadata=1:meta.ObjectMeta endpoints=2:[]discovery.Endpoint ports=3:[]discovery.EndpointPort "
        "addressType=4:string"),
    "discovery.Endpoint": (
        "addresses=1:[]string conditions=2:discovery.EndpointConditions hostname=3:string? "
        "targetRef=4:core.ObjectReference? deprecatedTopology=5:{}string nodeName=6:string? "
        "zone=7:string? hints=8:discovery.EndpointHints?"),
    "discovery.EndpointConditions": "ready=1:bool? serving=2:bool? terminating=3:bool?",
    "discovery.EndpointHints": (
        "forZones=1:[]discovery.ForZone forNodes=2:[]discovery.ForNode"),
    "discovery.ForZone": "name=1:string",
    "discovery.ForNode": "name=1:string",
    "discovery.EndpointPort": (
        "name=1:string? protocol=2:string? port=3:int32? appProtocol=4:string?"),
    "coordination.Lease": "metadata=1:meta.ObjectMeta spec=2:coordination.LeaseSpec",
    "coordination.LeaseSpec": (
        "holderIdentity=1:string? leaseDurationSeconds=2:int32? acquireTime=3:meta.MicroTime? "
        "renewTime=4:meta.MicroTime? leaseTransitions=5:int32? strategy=6:string? "
        "preferredHolder=7:string?"),
    "rbac.Role": "metadata=1:meta.ObjectMeta rules=2:[]rbac.PolicyRule",
    "rbac.PolicyRule": (
        "verbs=1:[]string apiGroups=2:[]string resources=3:[]string resourceNames=4:[]string "
        "nonResourceURLs=5:[]string"),
    "rbac.ClusterRole": (
        "metadata=1:meta.ObjectMeta rules=2:[]rbac.PolicyRule aggregationRule=3:rbac.AggregationRule?"),
    "rbac.AggregationRule": "clusterRoleSelectors=1:[]meta.LabelSelector",
    "rbac.RoleBinding": (
        "metadata=1:meta.ObjectMeta subjects=2:[]rbac.Subject roleRef=3:rbac.RoleRef"),
    "rbac.Subject": "kind=1:string apiGroup=2:string name=3:string namespace=4:string",
    "rbac.RoleRef": "apiGroup=1:string kind=2:string name=3:string",
    "rbac.ClusterRoleBinding": (
        "metadata=1:meta.ObjectMeta subjects=2:[]rbac.Subject roleRef=3:rbac.RoleRef"),
    "apps.ReplicaSet": (
        "metadata=1:meta.ObjectMeta spec=2:apps.ReplicaSetSpec status=3:apps.ReplicaSetStatus"),
    "apps.ReplicaSetSpec": (
        "replicas=1:int32? selector=2:meta.LabelSelector? template=3:core.PodTemplateSpec "
        "minReadySeconds=4:int32"),
    "core.PodTemplateSpec": "metadata=1:meta.ObjectMeta spec=2:core.PodSpec",
    "apps.ReplicaSetStatus": (
        "replicas=1:int32 fullyLabeledReplicas=2:int32 observedGeneration=3:int64 "
        "readyReplicas=4:int32 availableReplicas=5:int32 conditions=6:[]apps.ReplicaSetCondition "
        "terminatingReplicas=7:int32?"),
    "apps.ReplicaSetCondition": (
        "type=1:string status=2:string lastTransitionTime=3:meta.Time reason=4:string "
        "message=5:string"),
    "apps.Deployment": (
        "metadata=1:meta.ObjectMeta spec=2:apps.DeploymentSpec status=3:apps.DeploymentStatus"),
    "apps.DeploymentSpec": (
        "replicas=1:int32? selector=2:meta.LabelSelector? template=3:core.PodTemplateSpec "
        "strategy=4:apps.DeploymentStrategy minReadySeconds=5:int32 revisionHistoryLimit=6:int32? "
        "paused=7:bool progressDeadlineSeconds=9:int32?"),
    "apps.DeploymentStrategy": (
        "type=1:string rollingUpdate=2:apps.RollingUpdateDeployment?"),
    "apps.RollingUpdateDeployment": (
        "maxUnavailable=1:intstr.IntOrString? maxSurge=2:intstr.IntOrString?"),
    "apps.DeploymentStatus": (
        "observedGeneration=1:int64 replicas=2:int32 updatedReplicas=3:int32 "
        "availableReplicas=4:int32 unavailableReplicas=5:int32 "
        "conditions=6:[]apps.DeploymentCondition readyReplicas=7:int32 collisionCount=8:int32? "
        "terminatingReplicas=9:int32?"),
    "apps.DeploymentCondition": (
        "type=1:string status=2:string reason=4:string message=5:string lastUpdateTime=6:meta.Time "
        "lastTransitionTime=7:meta.Time"),
    "core.ReplicationController": (
        "metadata=1:meta.ObjectMeta spec=2:core.ReplicationControllerSpec "
        "status=3:core.ReplicationControllerStatus"),
    "core.ReplicationControllerSpec": (
        "replicas=1:int32? selector=2:{}string template=3:core.PodTemplateSpec? minReadySeconds=4:int32"),
    "core.ReplicationControllerStatus": (
        "replicas=1:int32! fullyLabeledReplicas=2:int32 observedGeneration=3:int64 readyReplicas=4:int32 "
        "availableReplicas=5:int32 conditions=6:[]core.ReplicationControllerCondition"),
    "core.ReplicationControllerCondition": (
        "type=1:string status=2:string lastTransitionTime=3:meta.Time reason=4:string message=5:string"),
    "core.ReplicationControllerList": "metadata=1:meta.ListMeta items=2:[]core.ReplicationController",
    # policy/v1: PodDisruptionBudget and the Eviction pods/eviction takes
    "policy.PodDisruptionBudget": (
        "metadata=1:meta.ObjectMeta spec=2:policy.PodDisruptionBudgetSpec status=3:policy.PodDisruptionBudgetStatus"),
    "policy.PodDisruptionBudgetSpec": (
        "minAvailable=1:intstr.IntOrString? selector=2:meta.LabelSelector? maxUnavailable=3:intstr.IntOrString? "
        "unhealthyPodEvictionPolicy=4:string?"),
    "policy.PodDisruptionBudgetStatus": (
        "observedGeneration=1:int64 disruptedPods=2:{}meta.Time disruptionsAllowed=3:int32! currentHealthy=4:int32! "
        "desiredHealthy=5:int32! expectedPods=6:int32! conditions=7:[]meta.Condition"),
    "policy.PodDisruptionBudgetList": "metadata=1:meta.ListMeta items=2:[]policy.PodDisruptionBudget",
    "policy.Eviction": "metadata=1:meta.ObjectMeta deleteOptions=2:meta.DeleteOptions?",
    "batch.Job": "metadata=1:meta.ObjectMeta spec=2:batch.JobSpec status=3:batch.JobStatus",
    "batch.JobSpec": (
        "parallelism=1:int32? completions=2:int32? activeDeadlineSeconds=3:int64? "
        "selector=4:meta.LabelSelector? manualSelector=5:bool? template=6:core.PodTemplateSpec "
        "backoffLimit=7:int32? ttlSecondsAfterFinished=8:int32? completionMode=9:string? suspend=10:bool? "
        "podReplacementPolicy=14:string?"),
    "batch.JobStatus": (
        "conditions=1:[]batch.JobCondition startTime=2:meta.Time? completionTime=3:meta.Time? "
        "active=4:int32 succeeded=5:int32 failed=6:int32 completedIndexes=7:string "
        "uncountedTerminatedPods=8:batch.UncountedTerminatedPods? ready=9:int32? terminating=11:int32?"),
    "batch.UncountedTerminatedPods": "succeeded=1:[]string failed=2:[]string",
    "batch.JobCondition": (
        "type=1:string status=2:string lastProbeTime=3:meta.Time lastTransitionTime=4:meta.Time "
        "reason=5:string message=6:string"),
    "batch.JobTemplateSpec": "metadata=1:meta.ObjectMeta spec=2:batch.JobSpec",
    "batch.CronJob": "metadata=1:meta.ObjectMeta spec=2:batch.CronJobSpec status=3:batch.CronJobStatus",
    "batch.CronJobSpec": (
        "schedule=1:string startingDeadlineSeconds=2:int64? concurrencyPolicy=3:string suspend=4:bool? "
        "jobTemplate=5:batch.JobTemplateSpec successfulJobsHistoryLimit=6:int32? failedJobsHistoryLimit=7:int32? "
        "timeZone=8:string?"),
    "batch.CronJobStatus": (
        "active=1:[]core.ObjectReference lastScheduleTime=4:meta.Time? lastSuccessfulTime=5:meta.Time?"),
    "apps.DaemonSet": (
        "metadata=1:meta.ObjectMeta spec=2:apps.DaemonSetSpec status=3:apps.DaemonSetStatus"),
    "apps.DaemonSetSpec": (
        "selector=1:meta.LabelSelector? template=2:core.PodTemplateSpec updateStrategy=3:apps.DaemonSetUpdateStrategy "
        "minReadySeconds=4:int32 revisionHistoryLimit=6:int32?"),
    "apps.DaemonSetUpdateStrategy": "type=1:string rollingUpdate=2:apps.RollingUpdateDaemonSet?",
    "apps.RollingUpdateDaemonSet": (
        "maxUnavailable=1:intstr.IntOrString? maxSurge=2:intstr.IntOrString?"),
    "apps.DaemonSetStatus": (
        "currentNumberScheduled=1:int32! numberMisscheduled=2:int32! desiredNumberScheduled=3:int32! "
        "numberReady=4:int32! observedGeneration=5:int64 updatedNumberScheduled=6:int32 numberAvailable=7:int32 "
        "numberUnavailable=8:int32 collisionCount=9:int32? conditions=10:[]apps.DaemonSetCondition"),
    "apps.DaemonSetCondition": (
        "type=1:string status=2:string lastTransitionTime=3:meta.Time reason=4:string message=5:string"),
    "apps.StatefulSet": (
        "metadata=1:meta.ObjectMeta spec=2:apps.StatefulSetSpec status=3:apps.StatefulSetStatus"),
    "apps.StatefulSetSpec": (
        "replicas=1:int32? selector=2:meta.LabelSelector? template=3:core.PodTemplateSpec serviceName=5:string "
        "podManagementPolicy=6:string updateStrategy=7:apps.StatefulSetUpdateStrategy revisionHistoryLimit=8:int32? "
        "minReadySeconds=9:int32 "
        "persistentVolumeClaimRetentionPolicy=10:apps.StatefulSetPersistentVolumeClaimRetentionPolicy? "
        "ordinals=11:apps.StatefulSetOrdinals?"),
    "apps.StatefulSetUpdateStrategy": "type=1:string rollingUpdate=2:apps.RollingUpdateStatefulSetStrategy?",
    "apps.RollingUpdateStatefulSetStrategy": "partition=1:int32? maxUnavailable=2:intstr.IntOrString?",
    "apps.StatefulSetPersistentVolumeClaimRetentionPolicy": "whenDeleted=1:string whenScaled=2:string",
    "apps.StatefulSetOrdinals": "start=1:int32",
    "apps.StatefulSetStatus": (
        "observedGeneration=1:int64 replicas=2:int32! readyReplicas=3:int32 currentReplicas=4:int32 "
        "updatedReplicas=5:int32 currentRevision=6:string updateRevision=7:string collisionCount=9:int32? "
        "conditions=10:[]apps.StatefulSetCondition availableReplicas=11:int32!"),
    "apps.StatefulSetCondition": (
        "type=1:string status=2:string lastTransitionTime=3:meta.Time reason=4:string message=5:string"),
    "apps.ControllerRevision": "metadata=1:meta.ObjectMeta data=2:runtime.RawExtension revision=3:int64",
    "meta.Status": (
        "metadata=1:meta.ListMeta status=2:string message=3:string reason=4:string "
        "details=5:meta.StatusDetails? code=6:int32"),
    "meta.ListMeta": (
        "selfLink=1:string resourceVersion=2:string continue=3:string remainingItemCount=4:int64? "
        "shardInfo=5:meta.ShardInfo?"),
    "meta.ShardInfo": "selector=1:string",
    "meta.StatusDetails": (
        "name=1:string group=2:string kind=3:string causes=4:[]meta.StatusCause "
        "retryAfterSeconds=5:int32 uid=6:string"),
    "meta.StatusCause": "reason=1:string message=2:string field=3:string",
    "meta.WatchEvent": "type=1:string object=2:runtime.RawExtension",
    "meta.DeleteOptions": (
        "gracePeriodSeconds=1:int64? preconditions=2:meta.Preconditions? orphanDependents=3:bool? "
        "propagationPolicy=4:string? dryRun=5:[]string "
        "ignoreStoreReadErrorWithClusterBreakingPotential=6:bool?"),
    "meta.Preconditions": "uid=1:string? resourceVersion=2:string?",
    "runtime.Unknown": (
        "typeMeta=1:+runtime.TypeMeta raw=2:bytes contentEncoding=3:string contentType=4:string"),
    "runtime.TypeMeta": "apiVersion=1:string kind=2:string",
    "core.NamespaceList": "metadata=1:meta.ListMeta items=2:[]core.Namespace",
    "core.ServiceList": "metadata=1:meta.ListMeta items=2:[]core.Service",
    "core.EndpointsList": "metadata=1:meta.ListMeta items=2:[]core.Endpoints",
    "core.PodList": "metadata=1:meta.ListMeta items=2:[]core.Pod",
    "core.NodeList": "metadata=1:meta.ListMeta items=2:[]core.Node",
    "core.ServiceAccountList": "metadata=1:meta.ListMeta items=2:[]core.ServiceAccount",
    "core.ResourceQuotaList": "metadata=1:meta.ListMeta items=2:[]core.ResourceQuota",
    "core.EventList": "metadata=1:meta.ListMeta items=2:[]core.Event",
    "core.SecretList": "metadata=1:meta.ListMeta items=2:[]core.Secret",
    "core.ConfigMapList": "metadata=1:meta.ListMeta items=2:[]core.ConfigMap",
    "discovery.EndpointSliceList": (
        "metadata=1:meta.ListMeta items=2:[]discovery.EndpointSlice"),
    "coordination.LeaseList": "metadata=1:meta.ListMeta items=2:[]coordination.Lease",
    "rbac.RoleList": "metadata=1:meta.ListMeta items=2:[]rbac.Role",
    "rbac.ClusterRoleList": "metadata=1:meta.ListMeta items=2:[]rbac.ClusterRole",
    "rbac.RoleBindingList": "metadata=1:meta.ListMeta items=2:[]rbac.RoleBinding",
    "rbac.ClusterRoleBindingList": (
        "metadata=1:meta.ListMeta items=2:[]rbac.ClusterRoleBinding"),
    "apps.ReplicaSetList": "metadata=1:meta.ListMeta items=2:[]apps.ReplicaSet",
    "apps.DeploymentList": "metadata=1:meta.ListMeta items=2:[]apps.Deployment",
    "batch.JobList": "metadata=1:meta.ListMeta items=2:[]batch.Job",
    "batch.CronJobList": "metadata=1:meta.ListMeta items=2:[]batch.CronJob",
    "apps.DaemonSetList": "metadata=1:meta.ListMeta items=2:[]apps.DaemonSet",
    "apps.StatefulSetList": "metadata=1:meta.ListMeta items=2:[]apps.StatefulSet",
    "apps.ControllerRevisionList": "metadata=1:meta.ListMeta items=2:[]apps.ControllerRevision",
    # authorization.k8s.io/v1 and authentication.k8s.io/v1: reviews and TokenRequest
    "authorization.SelfSubjectAccessReview": (
        "metadata=1:meta.ObjectMeta spec=2:authorization.SelfSubjectAccessReviewSpec "
        "status=3:authorization.SubjectAccessReviewStatus"),
    "authorization.SelfSubjectAccessReviewSpec": (
        "resourceAttributes=1:authorization.ResourceAttributes? "
        "nonResourceAttributes=2:authorization.NonResourceAttributes?"),
    "authorization.ResourceAttributes": (
        "namespace=1:string verb=2:string group=3:string version=4:string resource=5:string "
        "subresource=6:string name=7:string fieldSelector=8:authorization.FieldSelectorAttributes? "
        "labelSelector=9:authorization.LabelSelectorAttributes?"),
    "authorization.FieldSelectorAttributes": (
        "rawSelector=1:string requirements=2:[]meta.FieldSelectorRequirement"),
    "meta.FieldSelectorRequirement": (
        "key=1:string operator=2:string values=3:[]string"),
    "authorization.LabelSelectorAttributes": (
        "rawSelector=1:string requirements=2:[]meta.LabelSelectorRequirement"),
    "authorization.NonResourceAttributes": (
        "path=1:string verb=2:string"),
    "authorization.SubjectAccessReviewStatus": (
        "allowed=1:bool reason=2:string evaluationError=3:string denied=4:bool"),
    "authorization.SelfSubjectRulesReview": (
        "metadata=1:meta.ObjectMeta spec=2:authorization.SelfSubjectRulesReviewSpec "
        "status=3:authorization.SubjectRulesReviewStatus"),
    "authorization.SelfSubjectRulesReviewSpec": (
        "namespace=1:string"),
    "authorization.SubjectRulesReviewStatus": (
        "resourceRules=1:[]authorization.ResourceRule "
        "nonResourceRules=2:[]authorization.NonResourceRule incomplete=3:bool "
        "evaluationError=4:string"),
    "authorization.ResourceRule": (
        "verbs=1:[]string apiGroups=2:[]string resources=3:[]string resourceNames=4:[]string"),
    "authorization.NonResourceRule": (
        "verbs=1:[]string nonResourceURLs=2:[]string"),
    "authorization.SubjectAccessReview": (
        "metadata=1:meta.ObjectMeta spec=2:authorization.SubjectAccessReviewSpec "
        "status=3:authorization.SubjectAccessReviewStatus"),
    "authorization.SubjectAccessReviewSpec": (
        "resourceAttributes=1:authorization.ResourceAttributes? "
        "nonResourceAttributes=2:authorization.NonResourceAttributes? user=3:string groups=4:[]string "
        "extra=5:{}authorization.ExtraValue uid=6:string"),
    "authorization.LocalSubjectAccessReview": (
        "metadata=1:meta.ObjectMeta spec=2:authorization.SubjectAccessReviewSpec "
        "status=3:authorization.SubjectAccessReviewStatus"),
    "authentication.SelfSubjectReview": (
        "metadata=1:meta.ObjectMeta status=2:authentication.SelfSubjectReviewStatus"),
    "authentication.SelfSubjectReviewStatus": (
        "userInfo=1:authentication.UserInfo"),
    "authentication.UserInfo": (
        "username=1:string uid=2:string groups=3:[]string extra=4:{}authentication.ExtraValue"),
    "authentication.TokenReview": (
        "metadata=1:meta.ObjectMeta spec=2:authentication.TokenReviewSpec "
        "status=3:authentication.TokenReviewStatus"),
    "authentication.TokenReviewSpec": (
        "token=1:string audiences=2:[]string"),
    "authentication.TokenReviewStatus": (
        "authenticated=1:bool user=2:authentication.UserInfo error=3:string audiences=4:[]string"),
    "authentication.TokenRequest": (
        "metadata=1:meta.ObjectMeta spec=2:authentication.TokenRequestSpec "
        "status=3:authentication.TokenRequestStatus"),
    "authentication.TokenRequestSpec": (
        "audiences=1:[]string boundObjectRef=3:authentication.BoundObjectReference? "
        "expirationSeconds=4:int64? attestations=5:{}authentication.AttestationValue"),
    "authentication.BoundObjectReference": (
        "kind=1:string apiVersion=2:string name=3:string uID=4:string"),
    "authentication.AttestationValue": (
        "items=1:[]string"),
    "authentication.TokenRequestStatus": (
        "token=1:string expirationTimestamp=2:meta.Time"),
}

# apiVersion of each package's kinds
API_VERSIONS = {"core": "v1", "apps": "apps/v1", "batch": "batch/v1", "rbac": "rbac.authorization.k8s.io/v1",
                "discovery": "discovery.k8s.io/v1", "coordination": "coordination.k8s.io/v1",
                "authorization": "authorization.k8s.io/v1", "authentication": "authentication.k8s.io/v1",
                "policy": "policy/v1"}
# top-level kinds (each also with its List)
OBJECT_KINDS = (
    "core.Namespace", "core.Service", "core.Endpoints", "core.Pod", "core.Node", "core.ServiceAccount",
    "core.ResourceQuota", "core.Event", "core.Secret", "core.ConfigMap", "discovery.EndpointSlice",
    "coordination.Lease", "rbac.Role", "rbac.ClusterRole", "rbac.RoleBinding", "rbac.ClusterRoleBinding",
    "apps.ReplicaSet", "apps.Deployment",
    "core.ReplicationController", "policy.PodDisruptionBudget",
    "batch.Job", "batch.CronJob",
    "apps.DaemonSet", "apps.StatefulSet", "apps.ControllerRevision",
)
# kinds that are only created, never stored or listed
REVIEW_KINDS = (
    "authorization.SelfSubjectAccessReview", "authorization.SelfSubjectRulesReview",
    "authorization.SubjectAccessReview", "authorization.LocalSubjectAccessReview",
    "authentication.SelfSubjectReview", "authentication.TokenReview", "authentication.TokenRequest",
    "policy.Eviction",
)


def _kinds() -> dict[tuple[str, str], str]:
    kinds = {("v1", "Status"): "meta.Status", ("v1", "DeleteOptions"): "meta.DeleteOptions",
             ("meta.k8s.io/v1", "DeleteOptions"): "meta.DeleteOptions"}
    for message in OBJECT_KINDS:
        package, kind = message.split(".")
        kinds[(API_VERSIONS[package], kind)] = message
        kinds[(API_VERSIONS[package], kind + "List")] = message + "List"
    for message in REVIEW_KINDS:
        package, kind = message.split(".")
        kinds[(API_VERSIONS[package], kind)] = message
    return kinds


# (apiVersion, kind) -> message
KINDS = _kinds()
